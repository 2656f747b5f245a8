"""The official openai SDK against a running gateway whose upstream is the simulator
served over HTTP (provider kind "openai"): every byte crosses two real sockets."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

import store


@pytest.fixture(scope="module")
def key(gateway):
    return gateway.create_key(credits_usd=5.0)


@pytest.fixture(scope="module")
def client(gateway, key):
    c = openai.OpenAI(api_key=key["key"], base_url=gateway.url + "/v1", max_retries=0)
    yield c
    c.close()


def _wallet(gateway, account_id):
    db = gateway.db()
    try:
        return store.get_wallet(db, account_id), store.check_invariants(db)
    finally:
        db.close()


def test_chat_round_trip_with_headers(client, gateway, key):
    raw = client.chat.completions.with_raw_response.create(
        model="prism-mini", messages=[{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "say: hello from prism"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello from prism"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "prism-mini"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    h = raw.headers
    assert h["x-prism-model"] == "prism-mini"
    assert int(h["x-prism-tokens-in"]) == completion.usage.prompt_tokens
    assert int(h["x-prism-tokens-out"]) == completion.usage.completion_tokens
    # $1/Mtok in, $2/Mtok out, rounded up to the micro-dollar once.
    expected = -(-(completion.usage.prompt_tokens * 1 + completion.usage.completion_tokens * 2) // 1)
    assert h["x-prism-cost"] == f"0.{expected:06d}"
    assert h["x-request-id"].startswith("req_")
    wallet, problems = _wallet(gateway, key["account_id"])
    assert problems == []
    assert wallet.held_micros == 0


def test_alias_resolves_to_the_model(client):
    completion = client.chat.completions.create(
        model="mini", messages=[{"role": "user", "content": "say: alias works"}])
    assert completion.choices[0].message.content == "alias works"
    assert completion.model == "prism-mini"


def test_streaming_with_usage(client, gateway, key):
    stream = client.chat.completions.create(
        model="prism-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "say: one two three four five six seven eight"}])
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "one two three four five six seven eight"
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage_chunks = [ch for ch in chunks if ch.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert usage_chunks[0].usage.completion_tokens > 0
    wallet, problems = _wallet(gateway, key["account_id"])
    assert problems == [] and wallet.held_micros == 0


def test_stream_without_include_usage_sends_no_usage_chunk(client):
    chunks = list(client.chat.completions.create(
        model="prism-mini", stream=True, messages=[{"role": "user", "content": "say: hi"}]))
    assert all(ch.usage is None for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "hi"


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}


def test_tool_call_round_trip(client):
    messages = [{"role": "user", "content": "Use get_weather for city=Paris please"}]
    first = client.chat.completions.create(model="prism-mini", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    second = client.chat.completions.create(model="prism-mini", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert "18C and sunny" in second.choices[0].message.content


def test_streamed_tool_call(client):
    stream = client.chat.completions.create(
        model="prism-mini", stream=True, tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "call get_weather with city=Oslo"}])
    args, names = "", []
    for ch in stream:
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            if tc.function and tc.function.arguments:
                args += tc.function.arguments
    assert names == ["get_weather"]
    assert json.loads(args) == {"city": "Oslo"}


def test_json_mode(client):
    completion = client.chat.completions.create(
        model="prism-mini", response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Reply in JSON"}])
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


def test_json_schema_mode(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string"},
                                               "confidence": {"type": "number"}},
              "required": ["answer", "confidence"]}
    completion = client.chat.completions.create(
        model="prism-mini", messages=[{"role": "user", "content": "Answer with confidence"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}})
    data = json.loads(completion.choices[0].message.content)
    assert isinstance(data["answer"], str) and isinstance(data["confidence"], (int, float))


def test_models_list_and_get(client):
    ids = [m.id for m in client.models.list().data]
    assert {"prism-mini", "mini", "prism-big"} <= set(ids)
    assert "prism-off" not in ids
    assert client.models.retrieve("mini").id == "mini"
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("prism-off")
    assert exc.value.body["type"] == "model_not_found"


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["type"] == "model_not_found"


def test_unpriced_model_is_refused_not_served_free(client):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="prism-unpriced", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code == 402


def test_bad_key_is_401(gateway):
    c = openai.OpenAI(api_key="sk-prism-wrong", base_url=gateway.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        c.chat.completions.create(model="prism-mini", messages=[{"role": "user", "content": "x"}])
    assert exc.value.body["type"] == "invalid_api_key"


def test_upstream_errors_are_mapped(client):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="prism-mini",
                                       messages=[{"role": "user", "content": "[[sim status=503]] hi"}])
    assert exc.value.status_code == 502 and exc.value.body["type"] == "provider_error"
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="prism-mini",
                                       messages=[{"role": "user", "content": "[[sim status=429 retry_after=7]] hi"}])
    assert exc.value.response.headers["retry-after"] == "7"
    assert exc.value.body["type"] == "rate_limited"
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="prism-mini",
                                       messages=[{"role": "user", "content": "[[sim status=422]] hi"}])
    assert exc.value.body["type"] == "invalid_request"


def test_failed_requests_charge_nothing_and_release_holds(client, gateway, key):
    before, _ = _wallet(gateway, key["account_id"])
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="prism-mini",
                                       messages=[{"role": "user", "content": "[[sim status=500]] hi"}])
    after, problems = _wallet(gateway, key["account_id"])
    assert problems == []
    assert after.balance_micros == before.balance_micros and after.held_micros == 0


def test_max_tokens_truncates_with_length(client):
    completion = client.chat.completions.create(
        model="prism-mini", max_tokens=3,
        messages=[{"role": "user", "content": "say: alpha beta gamma delta epsilon zeta eta theta"}])
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens <= 3


def test_max_tokens_above_model_limit_is_refused(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="prism-mini", max_tokens=5000,
                                       messages=[{"role": "user", "content": "x"}])
    assert "max_tokens" in exc.value.body["message"]


def test_health_probes(gateway):
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(gateway.url + "/livez").status_code == 200
    assert httpx.get(gateway.url + "/readyz").json() == {"status": "ready"}
