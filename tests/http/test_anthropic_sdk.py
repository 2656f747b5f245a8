"""The official anthropic SDK against a running gateway, once per upstream kind.

Every model ``via-<kind>`` routes to a provider of that kind, all answered by the HTTP
simulator, so each test crosses Anthropic client -> gateway -> <kind> wire -> simulator
and back. Kinds whose provider is not in this build yet are left out. The last tests
drive the OpenAI SDK through an Anthropic upstream, the other direction.
"""
from __future__ import annotations

import importlib
import json
import time

import anthropic
import harness
import httpx
import openai
import pytest

import store
from gateway import tokenizer
from gateway.codecs.anthropic import to_canonical_request


def _available_kinds() -> tuple[str, ...]:
    kinds = []
    for kind in harness.UPSTREAM_KINDS:
        try:
            importlib.import_module(f"gateway.providers.{kind}")
            if kind != "openai":
                importlib.import_module(f"gateway.simulator.wire_{kind}")
        except ImportError:
            continue
        kinds.append(kind)
    return tuple(kinds)


KINDS = _available_kinds()
MODELS = [f"via-{k}" for k in KINDS]

WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    g = harness.start_gateway(tmp_path_factory.mktemp("gw-anthropic"), sim_url, upstream_kinds=KINDS)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def key(gw):
    return gw.create_key(credits_usd=5.0)


@pytest.fixture(scope="module")
def client(gw, key):
    c = anthropic.Anthropic(api_key=key["key"], base_url=gw.url, max_retries=0,
                            default_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    yield c
    c.close()


def _settled(gw, key) -> None:
    # A stream's error event is written before its settlement runs, so a client that
    # stops reading there may look before the hold is closed: allow it a moment.
    deadline = time.monotonic() + 5
    while True:
        db = gw.db()
        try:
            wallet, problems = store.get_wallet(db, key["account_id"]), store.check_invariants(db)
        finally:
            db.close()
        if wallet.held_micros == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert problems == [] and wallet.held_micros == 0


@pytest.mark.parametrize("model", MODELS)
def test_plain_message_with_headers(client, gw, key, model):
    raw = client.messages.with_raw_response.create(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "say: hello from prism"}])
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.model == model
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "hello from prism"
    assert msg.stop_reason == "end_turn" and msg.id.startswith("msg_")
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    h = raw.headers
    assert h["x-prism-model"] == model and h["x-request-id"] == "req_" + msg.id[4:]
    assert int(h["x-prism-tokens-in"]) == msg.usage.input_tokens + (msg.usage.cache_read_input_tokens or 0)
    assert int(h["x-prism-tokens-out"]) == msg.usage.output_tokens
    assert float(h["x-prism-cost"]) > 0
    _settled(gw, key)


@pytest.mark.parametrize("model", MODELS)
def test_streaming_text_and_final_message(client, gw, key, model):
    prompt = "say: one two three four five six seven eight"
    with client.messages.stream(model=model, max_tokens=200,
                                messages=[{"role": "user", "content": prompt}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == "one two three four five six seven eight"
    assert final.content[0].text == "".join(pieces) and final.stop_reason == "end_turn"
    assert final.model == model and final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    plain = client.messages.create(model=model, max_tokens=200, messages=[{"role": "user", "content": prompt}])
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens
    _settled(gw, key)


@pytest.mark.parametrize("model", MODELS)
def test_raw_stream_event_order(gw, key, model):
    r = httpx.post(gw.url + "/v1/messages", timeout=30,
                   headers={"authorization": f"Bearer {key['key']}", "anthropic-version": "2023-06-01"},
                   json={"model": model, "max_tokens": 100, "stream": True,
                         "messages": [{"role": "user", "content": "say: a b c d e f"}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    names = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert r.text.rstrip().endswith('data: {"type":"message_stop"}')
    assert ": prism cost=" in r.text


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_round_trip(client, model):
    messages = [{"role": "user", "content": "Use get_weather for city=Paris please"}]
    first = client.messages.create(model=model, max_tokens=200, messages=messages, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": "18C and sunny"}]}]
    second = client.messages.create(model=model, max_tokens=200, messages=messages, tools=[WEATHER])
    assert second.stop_reason == "end_turn"
    assert "18C and sunny" in second.content[0].text


@pytest.mark.parametrize("model", MODELS)
def test_streamed_tool_use(client, model):
    with client.messages.stream(model=model, max_tokens=200, tools=[WEATHER],
                                tool_choice={"type": "tool", "name": "get_weather"},
                                messages=[{"role": "user", "content": "weather for city=Oslo"}]) as stream:
        kinds = [ev.type for ev in stream]
        final = stream.get_final_message()
    assert "input_json" in kinds
    (call,) = final.content
    assert call.type == "tool_use" and call.input == {"city": "Oslo"}
    assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("model", MODELS)
def test_system_prompt_string_and_blocks(client, model):
    for system in ("You are terse.", [{"type": "text", "text": "You are terse."},
                                      {"type": "text", "text": "Really.", "cache_control": {"type": "ephemeral"}}]):
        msg = client.messages.create(model=model, max_tokens=100, system=system,
                                     messages=[{"role": "user", "content": "say: ok then"}])
        assert msg.content[0].text == "ok then"


@pytest.mark.parametrize("model", MODELS)
def test_max_tokens_stops_with_max_tokens(client, model):
    msg = client.messages.create(
        model=model, max_tokens=3,
        messages=[{"role": "user", "content": "say: alpha beta gamma delta epsilon zeta eta theta"}])
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens <= 3


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(client, model):
    messages = [{"role": "user", "content": "How many tokens is this sentence?"}]
    counted = client.messages.count_tokens(model=model, system="Be brief.", messages=messages, tools=[WEATHER])
    expected = tokenizer.count_request(to_canonical_request(
        {"model": model, "system": "Be brief.", "messages": messages, "tools": [WEATHER]},
        require_max_tokens=False))
    assert counted.input_tokens == expected > 0


def test_count_tokens_refusals(client, gw):
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["prism_code"] == "model_not_found"
    r = httpx.post(gw.url + "/v1/messages/count_tokens", json={"model": MODELS[0], "messages": []},
                   headers={"x-api-key": "sk-prism-wrong"})
    assert r.status_code == 401 and r.json()["type"] == "error"


@pytest.mark.parametrize("model", [m for m in MODELS if m in ("via-openai", "via-anthropic")])
def test_structured_output(client, model):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["answer", "n"], "additionalProperties": False}
    msg = client.messages.create(model=model, max_tokens=200,
                                 output_config={"format": {"type": "json_schema", "schema": schema}},
                                 messages=[{"role": "user", "content": "Answer with answer=yes"}])
    assert json.loads(msg.content[0].text) == {"answer": "yes", "n": 42}


# ---------------------------------------------------------------- errors

def test_bad_key_is_401_in_anthropic_shape(gw):
    c = anthropic.Anthropic(api_key="sk-prism-wrong", base_url=gw.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        c.messages.create(model=MODELS[0], max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["prism_code"] == "invalid_api_key"


def test_missing_max_tokens_is_400_naming_it(gw, key):
    r = httpx.post(gw.url + "/v1/messages", headers={"x-api-key": key["key"]},
                   json={"model": MODELS[0], "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["prism_code"] == "invalid_request"
    assert "max_tokens" in body["error"]["message"]


def test_refused_content_and_unknown_model(client):
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model=MODELS[0], max_tokens=10, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]}])
    assert "PDF" in exc.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["error"]["prism_code"] == "model_not_found"


@pytest.mark.parametrize("model", MODELS)
def test_upstream_errors_are_mapped(client, gw, key, model):
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model=model, max_tokens=10,
                               messages=[{"role": "user", "content": "[[sim status=503]] hi"}])
    assert exc.value.status_code == 502 and exc.value.body["error"]["prism_code"] == "provider_error"
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model=model, max_tokens=10,
                               messages=[{"role": "user", "content": "[[sim status=429 retry_after=7]] hi"}])
    assert exc.value.response.headers["retry-after"] == "7"
    assert exc.value.body["error"]["prism_code"] == "rate_limited"
    _settled(gw, key)


@pytest.mark.parametrize("model", MODELS)
def test_mid_stream_failure_is_an_error_event(client, gw, key, model):
    prompt = "[[sim disconnect_after=3 chunk_chars=2]] say: a long enough reply"
    with pytest.raises(anthropic.APIStatusError) as exc, client.messages.stream(
            model=model, max_tokens=200, messages=[{"role": "user", "content": prompt}]) as s:
        for _ in s.text_stream:
            pass
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["prism_code"] == "provider_error"
    _settled(gw, key)


def test_upstream_got_the_provider_key_as_x_api_key(client, sim_url):
    if "anthropic" not in KINDS:
        pytest.skip("no anthropic provider")
    httpx.post(sim_url + "/_sim/reset")
    client.messages.create(model="via-anthropic", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(sim_url + "/_sim/stats").json()["last_authorization"] == "sk-upstream-test"


# ---------------------------------------------------------------- OpenAI client -> Anthropic upstream

@pytest.fixture(scope="module")
def oai(gw, key):
    c = openai.OpenAI(api_key=key["key"], base_url=gw.url + "/v1", max_retries=0)
    yield c
    c.close()


def test_openai_sdk_through_an_anthropic_upstream(oai):
    completion = oai.chat.completions.create(
        model="via-anthropic", messages=[{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "say: crossed over"}])
    assert completion.choices[0].message.content == "crossed over"
    assert completion.choices[0].finish_reason == "stop" and completion.usage.completion_tokens > 0


def test_openai_sdk_streamed_tool_calls_through_an_anthropic_upstream(oai):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["input_schema"]}}
    stream = oai.chat.completions.create(
        model="via-anthropic", stream=True, tools=[tool], stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "call get_weather with city=Oslo"}])
    args, names, finishes, usage = "", [], [], None
    for ch in stream:
        usage = ch.usage or usage
        for choice in ch.choices:
            finishes += [choice.finish_reason] if choice.finish_reason else []
            for tc in choice.delta.tool_calls or []:
                if tc.function and tc.function.name:
                    names.append(tc.function.name)
                if tc.function and tc.function.arguments:
                    args += tc.function.arguments
    assert names == ["get_weather"] and json.loads(args) == {"city": "Oslo"}
    assert finishes == ["tool_calls"] and usage is not None and usage.completion_tokens > 0
