"""The official openai SDK's Responses and legacy Completions clients against a running
gateway, whose upstreams are the simulator served over HTTP in each upstream dialect we
can build (kind openai always; anthropic and gemini once their providers import)."""
from __future__ import annotations

import importlib.util
import json
import time

import httpx
import openai
import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

import harness
import store
from store.models import Hold, RequestLog

KINDS = ("openai",) + tuple(k for k in ("anthropic", "gemini")
                            if importlib.util.find_spec(f"gateway.providers.{k}") is not None)
# prism-mini routes to the default openai-kind upstream; via-<kind> to each upstream kind.
MODELS = ("prism-mini",) + tuple(f"via-{k}" for k in KINDS)

WEATHER_TOOL = {
    "type": "function", "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"], "additionalProperties": False},
    "strict": True,
}


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    g = harness.start_gateway(tmp_path_factory.mktemp("gw-responses"), sim_url,
                              upstream_kinds=KINDS)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def key(gw):
    return gw.create_key(credits_usd=5.0)


def _client(gw, key) -> openai.OpenAI:
    return openai.OpenAI(api_key=key["key"], base_url=gw.url + "/v1", max_retries=0)


@pytest.fixture(scope="module")
def client(gw, key):
    c = _client(gw, key)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stranger(gw):
    c = _client(gw, gw.create_key(credits_usd=1.0, name="stranger"))
    yield c
    c.close()


def _books(gw, account_id):
    db = gw.db()
    try:
        return store.get_wallet(db, account_id), store.check_invariants(db)
    finally:
        db.close()


# ---------------------------------------------------------------- create

@pytest.mark.parametrize("model", MODELS)
def test_create_text_with_billing_headers(client, gw, key, model):
    raw = client.responses.with_raw_response.create(
        model=model, instructions="Be brief.", input="say: hello from responses")
    resp = raw.parse()
    assert resp.output_text == "hello from responses"
    assert resp.status == "completed" and resp.object == "response" and resp.model == model
    assert resp.id.startswith("resp_") and resp.instructions == "Be brief."
    u = resp.usage
    assert u.input_tokens > 0 and u.output_tokens > 0
    assert u.total_tokens == u.input_tokens + u.output_tokens
    h = raw.headers
    assert int(h["x-prism-tokens-in"]) == u.input_tokens
    assert int(h["x-prism-tokens-out"]) == u.output_tokens
    # $1/Mtok in, $2/Mtok out, rounded up to the micro-dollar once.
    assert h["x-prism-cost"] == f"0.{u.input_tokens + 2 * u.output_tokens:06d}"
    assert h["x-prism-model"] == model
    wallet, problems = _books(gw, key["account_id"])
    assert problems == [] and wallet.held_micros == 0


@pytest.mark.parametrize("model", MODELS)
def test_stream_helper_collects_deltas_and_final_usage(client, model):
    words = "one two three four five six seven eight"
    with client.responses.stream(model=model, input=f"say: {words}") as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == words
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == sorted(e.sequence_number for e in events)
    assert final.output_text == words and final.status == "completed"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0


def test_create_stream_true_yields_typed_events(client):
    adapter = TypeAdapter(ResponseStreamEvent)
    events = list(client.responses.create(model="prism-mini", input="say: streamed", stream=True))
    for e in events:
        adapter.validate_python(e.model_dump())
    done = [e for e in events if e.type == "response.output_text.done"]
    assert [d.text for d in done] == ["streamed"]
    assert events[-1].type == "response.completed" and events[-1].response.usage.total_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_function_tool_round_trip_through_previous_response_id(client, model):
    first = client.responses.create(model=model, tools=[WEATHER_TOOL],
                                    input="Use get_weather for city=Paris please")
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    second = client.responses.create(
        model=model, tools=[WEATHER_TOOL], previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "18C and sunny"}])
    assert "Tool result received" in second.output_text
    assert "18C and sunny" in second.output_text
    assert second.previous_response_id == first.id


def test_streamed_function_call(client):
    with client.responses.stream(model="prism-mini", tools=[WEATHER_TOOL],
                                 input="call get_weather with city=Oslo") as stream:
        args = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    assert json.loads(args) == {"city": "Oslo"}
    assert [o.type for o in final.output] == ["function_call"]


@pytest.mark.parametrize("model", MODELS)
def test_chaining_carries_the_conversation(client, model):
    first = client.responses.create(model=model, input="say: first answer")
    second = client.responses.create(model=model, input="say: second answer",
                                     previous_response_id=first.id)
    assert second.output_text == "second answer"
    # The whole first exchange rode along as history.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens


def test_chaining_from_a_stream_right_after_it_completes(client):
    with client.responses.stream(model="prism-mini", input="say: streamed first") as stream:
        final = stream.get_final_response()
    nxt = client.responses.create(model="prism-mini", input="say: right after",
                                  previous_response_id=final.id)
    assert nxt.output_text == "right after"


def test_retrieve_and_delete(client):
    made = client.responses.create(model="prism-mini", input="say: keep me", metadata={"k": "v"})
    got = client.responses.retrieve(made.id)
    assert got.model_dump() == made.model_dump()
    assert got.metadata == {"k": "v"}
    assert client.responses.delete(made.id) is None
    with pytest.raises(openai.NotFoundError) as exc:
        client.responses.retrieve(made.id)
    assert exc.value.body["type"] == "not_found"
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)


def test_another_account_cannot_see_or_continue_it(client, stranger):
    made = client.responses.create(model="prism-mini", input="say: private")
    with pytest.raises(openai.NotFoundError) as exc:
        stranger.responses.retrieve(made.id)
    assert exc.value.body["type"] == "not_found" and made.id in exc.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.create(model="prism-mini", input="hi", previous_response_id=made.id)
    assert client.responses.retrieve(made.id).output_text == "private"   # still there


def test_store_false_is_not_kept(client):
    made = client.responses.create(model="prism-mini", input="say: ephemeral", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_json_schema_text_format_returns_parseable_json(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string"},
                                               "confidence": {"type": "number"}},
              "required": ["answer", "confidence"], "additionalProperties": False}
    resp = client.responses.create(
        model="prism-mini", input="Answer with confidence",
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}})
    data = json.loads(resp.output_text)
    assert isinstance(data["answer"], str) and isinstance(data["confidence"], (int, float))
    assert resp.text.format.type == "json_schema"


def test_small_max_output_tokens_is_incomplete(client):
    prompt = "say: alpha beta gamma delta epsilon zeta eta theta iota kappa"
    resp = client.responses.create(model="prism-mini", input=prompt, max_output_tokens=3)
    assert resp.status == "incomplete"
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage.output_tokens <= 3
    events = list(client.responses.create(model="prism-mini", input=prompt,
                                          max_output_tokens=3, stream=True))
    assert events[-1].type == "response.incomplete"


def test_refusals_are_openai_shaped_400s(client, gw, key):
    before, _ = _books(gw, key["account_id"])
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="prism-mini", input="hi", tools=[{"type": "local_shell"}])
    assert "not supported by this gateway" in exc.value.body["message"]
    assert exc.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="prism-mini", input=[{"role": "user", "content": [
            {"type": "input_image", "file_id": "file-123", "detail": "auto"}]}])
    assert "Files API" in exc.value.body["message"]
    with pytest.raises(openai.NotFoundError) as exc:
        client.responses.create(model="prism-mini", input="hi", previous_response_id="resp_nope")
    assert exc.value.body["code"] == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError) as exc:   # over the storage cap
        client.responses.create(model="prism-mini", input="x" * 1_100_000)
    assert exc.value.body["code"] == "conversation_too_large"
    after, problems = _books(gw, key["account_id"])
    assert problems == [] and after.balance_micros == before.balance_micros


def test_client_hanging_up_mid_stream_settles_at_once_and_stores_nothing(gw, key, client):
    words = " ".join(f"word{i}" for i in range(200))
    body = {"model": "prism-mini", "stream": True,
            "input": f"[[sim chunk_delay_ms=20]] say: {words}"}
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        with http.stream("POST", "/v1/responses", json=body,
                         headers={"authorization": f"Bearer {key['key']}"}) as resp:
            assert resp.status_code == 200
            request_id = resp.headers["x-request-id"]
            assert next(resp.iter_raw()).startswith(b"event: response.created")
    deadline = time.monotonic() + 10
    while True:
        db = gw.db()
        try:
            hold = Hold.get(Hold.request_id == request_id)
            log = RequestLog.get_or_none(RequestLog.request_id == request_id)
        finally:
            db.close()
        if hold.state != "open" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert hold.state == "settled" and 0 < hold.charged_micros < hold.amount_micros
    assert log.status == 499 and log.estimated
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_" + request_id.removeprefix("req_"))
    assert _books(gw, key["account_id"])[1] == []


def test_upstream_cut_mid_stream_is_reported_in_band(client, gw, key):
    events = list(client.responses.create(
        model="prism-mini", stream=True,
        input="[[sim disconnect_after=3 chunk_chars=2]] say: a long enough answer"))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.code == "server_error"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[-1].response.id)
    wallet, problems = _books(gw, key["account_id"])
    assert problems == [] and wallet.held_micros == 0


# ---------------------------------------------------------------- legacy completions

@pytest.mark.parametrize("model", MODELS)
def test_legacy_completion(client, gw, key, model):
    raw = client.completions.with_raw_response.create(model=model, prompt="say: legacy hello")
    done = raw.parse()
    assert done.object == "text_completion" and done.id.startswith("cmpl-")
    assert done.choices[0].text == "legacy hello" and done.choices[0].finish_reason == "stop"
    assert done.usage.completion_tokens > 0
    assert raw.headers["x-prism-cost"] == \
        f"0.{done.usage.prompt_tokens + 2 * done.usage.completion_tokens:06d}"
    wallet, problems = _books(gw, key["account_id"])
    assert problems == [] and wallet.held_micros == 0


def test_legacy_completion_defaults_to_16_tokens_and_echoes(client):
    long = "say: " + " ".join(f"w{i}" for i in range(60))
    done = client.completions.create(model="prism-mini", prompt=long)
    assert done.choices[0].finish_reason == "length" and done.usage.completion_tokens <= 16
    echoed = client.completions.create(model="prism-mini", prompt="say: back", echo=True)
    assert echoed.choices[0].text == "say: backback"


def test_legacy_completion_stream_with_usage(client, gw, key):
    chunks = list(client.completions.create(
        model="prism-mini", prompt="say: one two three four five six", stream=True,
        stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == "one two three four five six"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    wallet, problems = _books(gw, key["account_id"])
    assert problems == [] and wallet.held_micros == 0


def test_legacy_token_prompts_are_refused(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model="prism-mini", prompt=[1, 2, 3])
    assert "token ids" in exc.value.body["message"]
