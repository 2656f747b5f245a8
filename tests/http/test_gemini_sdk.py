"""The official google-genai SDK (and raw httpx, and the openai SDK) against a running
gateway whose upstreams are the HTTP simulator speaking each provider kind: every
inbound Gemini request crosses two real sockets, once per upstream dialect."""
from __future__ import annotations

import importlib.util
import json

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

import harness
import store

KINDS = ["openai", "gemini"] + (
    ["anthropic"] if importlib.util.find_spec("gateway.providers.anthropic") else [])
MODELS = [f"via-{k}" for k in KINDS]
UPSTREAM_KEY = "sk-upstream-test"

WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Current weather for a city",
    parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]})])
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    providers, models = harness.upstream_providers(sim_url, tuple(KINDS))
    for m in models:   # refuse rather than drop built-in tools a route cannot run
        m["hosted_tools"] = "refuse"
    # Served by OpenAI first, failing over to Gemini: native features must skip the first.
    models.append({**models[0], "id": "via-openai-then-gemini", "routes": [
        {"provider": "sim-openai", "model": "sim-openai-model"},
        {"provider": "sim-gemini", "model": "sim-gemini-model"}]})
    g = harness.start_gateway(tmp_path_factory.mktemp("gemini"), sim_url,
                              providers=providers, models=models)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def key(gw):
    return gw.create_key(credits_usd=5.0)


@pytest.fixture(scope="module")
def client(gw, key):
    return genai.Client(api_key=key["key"],
                        http_options=types.HttpOptions(base_url=gw.url, api_version="v1beta"))


@pytest.fixture
def http(gw):
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        yield c


def sim_stats(sim_url: str) -> dict:
    return httpx.get(sim_url + "/_sim/stats").json()


def wallet_ok(gw, account_id: str) -> None:
    db = gw.db()
    try:
        assert store.check_invariants(db) == []
        assert store.get_wallet(db, account_id).held_micros == 0
    finally:
        db.close()


# ---------------------------------------------------------------- per upstream kind

@pytest.mark.parametrize("model", MODELS)
def test_generate_content(client, gw, key, model):
    r = client.models.generate_content(model=model, contents="say: hello from gemini")
    assert r.text == "hello from gemini"
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    u = r.usage_metadata
    assert u.prompt_token_count > 0 and u.candidates_token_count > 0
    assert u.total_token_count == u.prompt_token_count + u.candidates_token_count
    assert r.model_version == model
    headers = r.sdk_http_response.headers
    assert headers["x-prism-model"] == model
    assert int(headers["x-prism-tokens-out"]) == u.candidates_token_count
    wallet_ok(gw, key["account_id"])


@pytest.mark.parametrize("model", MODELS)
def test_generate_content_stream(client, gw, key, model):
    chunks = list(client.models.generate_content_stream(
        model=model, contents="say: one two three four five six seven eight"))
    assert len(chunks) > 2
    assert "".join(ch.text or "" for ch in chunks) == "one two three four five six seven eight"
    assert [ch.candidates[0].finish_reason for ch in chunks if ch.candidates[0].finish_reason] == \
        [types.FinishReason.STOP]
    final = chunks[-1].usage_metadata
    assert final.prompt_token_count > 0 and final.candidates_token_count > 0
    assert all(ch.text is not None for ch in chunks)  # `"".join(ch.text ...)` never meets None
    wallet_ok(gw, key["account_id"])


@pytest.mark.parametrize("model", MODELS)
def test_function_calling_round_trip(client, model):
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC)
    first = client.models.generate_content(model=model, contents="Use get_weather for city=Paris",
                                           config=config)
    (call,) = first.function_calls
    assert call.name == "get_weather" and call.args == {"city": "Paris"}
    history = [types.Content(role="user", parts=[types.Part(text="Use get_weather for city=Paris")]),
               first.candidates[0].content,
               types.Content(role="user", parts=[types.Part.from_function_response(
                   name="get_weather", response={"output": "18C and sunny"})])]
    second = client.models.generate_content(model=model, contents=history, config=config)
    assert not second.function_calls
    assert "18C and sunny" in second.text


@pytest.mark.parametrize("model", MODELS)
def test_streamed_function_call(client, model):
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=NO_AFC,
                                         tool_config=types.ToolConfig(
                                             function_calling_config=types.FunctionCallingConfig(
                                                 mode="ANY", allowed_function_names=["get_weather"])))
    chunks = list(client.models.generate_content_stream(
        model=model, contents="weather for city=Oslo", config=config))
    calls = [fc for ch in chunks for fc in (ch.function_calls or [])]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Oslo"})]


@pytest.mark.parametrize("model", MODELS)
def test_json_mode_with_response_schema(client, model):
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={"type": "OBJECT", "properties": {"answer": {"type": "STRING"},
                                                          "confidence": {"type": "NUMBER"}},
                         "required": ["answer", "confidence"]})
    r = client.models.generate_content(model=model, contents="answer=yes please", config=config)
    assert isinstance(r.parsed, dict)
    assert r.parsed["answer"] == "yes" and isinstance(r.parsed["confidence"], (int, float))
    if model != "via-anthropic":
        # Anthropic has no JSON mode: its codec writes an instruction the simulator
        # cannot act on, so only the other dialects can show json_object arriving.
        plain_json = client.models.generate_content(
            model=model, contents="say: hi",
            config=types.GenerateContentConfig(response_mime_type="application/json"))
        assert json.loads(plain_json.text) == {"reply": "hi"}


@pytest.mark.parametrize("model", MODELS)
def test_system_instruction_reaches_the_upstream(client, model):
    bare = client.models.generate_content(model=model, contents="say: ok")
    guided = client.models.generate_content(
        model=model, contents="say: ok",
        config=types.GenerateContentConfig(system_instruction="You are a pirate. Answer like one, always."))
    assert guided.text == bare.text == "ok"  # the simulator ignores system text...
    # ...but counts it: the system instruction was in the upstream prompt.
    assert guided.usage_metadata.prompt_token_count > bare.usage_metadata.prompt_token_count


# ---------------------------------------------------------------- paths and keys

@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_raw_http_paths_and_key_styles(http, key, sim_url, version):
    payload = {"contents": [{"role": "user", "parts": [{"text": "say: raw works"}]}],
               "generationConfig": {"maxOutputTokens": 50, "temperature": 0.2}}
    for kwargs in ({"headers": {"x-goog-api-key": key["key"]}},
                   {"params": {"key": key["key"]}},
                   {"headers": {"authorization": f"Bearer {key['key']}"}},
                   {"headers": {"x-api-key": key["key"]}}):
        r = http.post(f"/{version}/models/via-gemini:generateContent", json=payload, **kwargs)
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["candidates"][0]["content"] == {"role": "model", "parts": [{"text": "raw works"}]}
        assert data["candidates"][0]["finishReason"] == "STOP"
        assert set(data["usageMetadata"]) >= {"promptTokenCount", "candidatesTokenCount", "totalTokenCount"}
    # The upstream heard the gateway's own Gemini key, in the header it expects.
    assert sim_stats(sim_url)["last_authorization"] == UPSTREAM_KEY
    r = http.post(f"/{version}/models/via-openai:streamGenerateContent", params={"alt": "sse", "key": key["key"]},
                  json=payload)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert "".join(p.get("text", "") for e in events for p in e["candidates"][0]["content"]["parts"]) == "raw works"
    assert "usageMetadata" in events[-1] and events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert not any(line.startswith(":") for line in r.text.splitlines())


def test_bad_key_is_unauthenticated(http):
    r = http.post("/v1beta/models/via-gemini:generateContent", params={"key": "sk-prism-wrong"},
                  json={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.status_code == 401
    assert r.json()["error"]["status"] == "UNAUTHENTICATED" and r.json()["error"]["code"] == 401


def test_unknown_model_method_and_coexisting_get(http, key, client):
    auth = {"x-goog-api-key": key["key"]}
    r = http.post("/v1beta/models/nope:generateContent", headers=auth,
                  json={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    r = http.post("/v1beta/models/via-gemini:predictLongRunning", headers=auth, json={})
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    # GET on the same path prefix is the model lookup, untouched by the POST rules.
    r = http.get("/v1beta/models/via-gemini", headers=auth)
    assert r.status_code == 200 and r.json()["name"] == "models/via-gemini"
    assert client.models.get(model="via-gemini").name == "models/via-gemini"


def test_count_tokens(client):
    short = client.models.count_tokens(model="via-openai", contents="hi").total_tokens
    long = client.models.count_tokens(model="via-openai", contents="hi " * 50).total_tokens
    assert 0 < short < long


# ---------------------------------------------------------------- refusals before any upstream call

def test_stream_true_on_generate_content_is_refused(http, key, sim_url):
    before = sim_stats(sim_url)["requests"]
    r = http.post("/v1beta/models/via-gemini:generateContent", headers={"x-goog-api-key": key["key"]},
                  json={"contents": [{"parts": [{"text": "x"}]}], "stream": True})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and "streamGenerateContent" in err["message"]
    assert sim_stats(sim_url)["requests"] == before


@pytest.mark.parametrize("model", MODELS)
def test_invalid_schema_is_refused_with_no_upstream_call(client, sim_url, model):
    before = sim_stats(sim_url)["requests"]
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={"type": "OBJECT", "properties": {"answer": {"type": "STRING"}},
                         "required": ["answer", "confidence"]})
    with pytest.raises(genai_errors.ClientError) as exc:
        client.models.generate_content(model=model, contents="x", config=config)
    assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
    assert exc.value.message.startswith("invalid_response_format_schema:")
    assert "confidence" in exc.value.message
    assert sim_stats(sim_url)["requests"] == before


@pytest.mark.parametrize("model", [m for m in MODELS if m != "via-gemini"])
def test_google_search_needs_a_gemini_route(client, sim_url, model):
    before = sim_stats(sim_url)["requests"]
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    with pytest.raises(genai_errors.ClientError) as exc:
        client.models.generate_content(model=model, contents="news today?", config=config)
    assert exc.value.code == 400 and exc.value.message.startswith("unsupported_gemini_feature:")
    assert "googleSearch" in exc.value.message
    assert sim_stats(sim_url)["requests"] == before
    # The same request on the Gemini route goes through to the upstream.
    r = client.models.generate_content(model="via-gemini", contents="say: searched", config=config)
    assert r.text == "searched"


def served_by(gw, key, request_id: str) -> str:
    db = gw.db()
    try:
        rows = store.request_logs(db, account_id=key["account_id"], limit=500)
    finally:
        db.close()
    (row,) = [r for r in rows if r.request_id == request_id]
    return row.provider


def test_native_features_skip_routes_that_would_drop_them(client, gw, key):
    search = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    r = client.models.generate_content(model="via-openai-then-gemini", contents="say: found", config=search)
    assert r.text == "found"
    assert served_by(gw, key, r.sdk_http_response.headers["x-request-id"]) == "sim-gemini"
    # Without native features the first route serves as usual.
    r = client.models.generate_content(model="via-openai-then-gemini", contents="say: plain")
    assert served_by(gw, key, r.sdk_http_response.headers["x-request-id"]) == "sim-openai"


def test_smart_routing_model_any(gw, key):
    auto = genai.Client(api_key=key["key"], http_options=types.HttpOptions(
        base_url=gw.url, api_version="v1beta", headers={"X-Prism-Mode": "eco"}))
    r = auto.models.generate_content(model="any", contents="say: routed")
    assert r.text == "routed"
    assert r.sdk_http_response.headers["x-prism-model"] != "any"
    modeless = genai.Client(api_key=key["key"], http_options=types.HttpOptions(
        base_url=gw.url, api_version="v1beta"))
    with pytest.raises(genai_errors.ClientError) as exc:
        modeless.models.generate_content(model="any", contents="x")
    assert exc.value.message.startswith("missing_mode_header:")


def test_non_object_schema_root_needs_a_gemini_route(client, sim_url):
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_schema={"type": "ARRAY", "items": {"type": "STRING"}})
    before = sim_stats(sim_url)["requests"]
    with pytest.raises(genai_errors.ClientError) as exc:
        client.models.generate_content(model="via-openai", contents="x", config=config)
    assert exc.value.message.startswith("unsupported_response_format:")
    assert sim_stats(sim_url)["requests"] == before
    r = client.models.generate_content(model="via-gemini", contents="x", config=config)
    assert isinstance(r.parsed, list)


# ---------------------------------------------------------------- upstream failures in Gemini shape

def test_upstream_failures_use_gemini_errors(http, key, client):
    auth = {"x-goog-api-key": key["key"]}

    def ask(text: str) -> httpx.Response:
        return http.post("/v1beta/models/via-gemini:generateContent", headers=auth,
                         json={"contents": [{"parts": [{"text": text}]}]})

    r = ask("[[sim status=429 retry_after=7]] hi")
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    r = ask("[[sim status=503]] hi")
    assert r.status_code == 502 and r.json()["error"]["status"] == "UNAVAILABLE"
    with pytest.raises(genai_errors.APIError) as exc:
        list(client.models.generate_content_stream(
            model="via-gemini", contents="[[sim disconnect_after=3 chunk_chars=2]] say: cut me off please"))
    assert exc.value.code == 502


# ---------------------------------------------------------------- other clients onto a Gemini upstream

def test_openai_sdk_against_a_gemini_upstream(gw, key, sim_url):
    oa = openai.OpenAI(api_key=key["key"], base_url=gw.url + "/v1", max_retries=0)
    try:
        tool = {"type": "function", "function": {
            "name": "get_weather", "description": "Weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
        messages = [{"role": "user", "content": "Use get_weather for city=Paris please"}]
        first = oa.chat.completions.create(model="via-gemini", messages=messages, tools=[tool])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
        messages += [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
        second = oa.chat.completions.create(model="via-gemini", messages=messages, tools=[tool])
        assert second.choices[0].finish_reason == "stop"
        assert "18C and sunny" in second.choices[0].message.content
        assert sim_stats(sim_url)["last_authorization"] == UPSTREAM_KEY
        chunks = list(oa.chat.completions.create(
            model="via-gemini", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "say: streamed through gemini"}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed through gemini"
        assert len([c for c in chunks if c.usage is not None]) == 1
    finally:
        oa.close()
    wallet_ok(gw, key["account_id"])
