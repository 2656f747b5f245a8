"""What a coding agent is told when a route cannot serve what it sent, over HTTP.

- An upstream that refuses a mid-conversation system message: the client gets the 400
  Claude Code keys its fallback on (``role 'system' is not supported``), in its own
  dialect, and never the upstream's words.
- X-Prism-Dropped-Tools describes the route that served the request, also after
  failover from the route that would have kept the hosted tool.
"""
from __future__ import annotations

import json
import re

import httpx
import pytest

import harness

# Claude Code's own test for "retry without mid-conversation system messages".
_CLAUDE_CODE_FALLBACK = re.compile(r"role .{0,2}system", re.I)

ANTHROPIC_REFUSAL = "role 'system' is not supported on this model"
TEMPLATE_REFUSAL = "System message must be at the beginning."


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    providers, models = harness.upstream_providers(sim_url)
    by_id = {m["id"]: m for m in models}
    # Nothing listens on port 9: a connect error, which fails over.
    providers += [{"id": f"dead-{kind}", "kind": kind, "base_url": "http://127.0.0.1:9",
                   "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "read_timeout": 5.0}
                  for kind in ("anthropic", "gemini")]
    models += [
        dict(by_id["via-anthropic"], id="anthropic-then-gemini", routes=[
            {"provider": "dead-anthropic", "model": "a"}, {"provider": "sim-gemini", "model": "b"}]),
        dict(by_id["via-anthropic"], id="gemini-then-openai", routes=[
            {"provider": "dead-gemini", "model": "a"}, {"provider": "sim-openai", "model": "b"}]),
        dict(by_id["via-anthropic"], id="folding", system_messages="fold"),
        # An OpenAI-kind upstream on the Responses API runs web_search itself.
        dict(by_id["via-openai"], id="chat-then-responses", routes=[
            {"provider": "sim-openai", "model": "a"}, {"provider": "sim-responses", "model": "b"}]),
        dict(by_id["via-openai"], id="strict-responses", hosted_tools="refuse", routes=[
            {"provider": "sim-openai", "model": "a"}, {"provider": "sim-responses", "model": "b"}]),
    ]
    providers.append({"id": "sim-responses", "kind": "openai", "api": "responses",
                      "base_url": sim_url + "/v1", "api_key_env": "PRISM_TEST_UPSTREAM_KEY",
                      "read_timeout": 30.0})
    g = harness.start_gateway(tmp_path_factory.mktemp("fallbacks"), sim_url,
                              providers=providers, models=models)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def http(gw):
    key = gw.create_key(credits_usd=20)["key"]
    with httpx.Client(base_url=gw.url, timeout=30, headers={
            "authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}) as c:
        yield c


def _refusing(message: str) -> str:
    quote = "'" if '"' in message else '"'
    return f"say: hi [[sim status=400 message={quote}{message}{quote}]]"


def _messages(model: str, prompt: str, stream: bool = False) -> dict:
    return {"model": model, "max_tokens": 50, "stream": stream, "messages": [
        {"role": "user", "content": prompt}, {"role": "system", "content": "Be terse."}]}


# ------------------------------------------------- mid-conversation system messages

@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("upstream_words", [ANTHROPIC_REFUSAL, 'Unexpected role "system"'])
def test_refused_system_message_is_the_refusal_claude_code_falls_back_on(http, stream,
                                                                         upstream_words):
    r = http.post("/v1/messages", json=_messages("via-anthropic", _refusing(upstream_words), stream))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert r.json()["type"] == "error"
    assert err["type"] == "invalid_request_error"
    assert err["prism_code"] == "unsupported_system_role"
    message = err["message"]
    assert "not supported" in message and _CLAUDE_CODE_FALLBACK.search(message)
    assert "'via-anthropic'" in message and 'system_messages = "fold"' in message
    assert "on this model" not in message and "Unexpected" not in message   # not the upstream's words


def test_openai_dialect_gets_it_in_its_own_shape(http):
    r = http.post("/v1/chat/completions", json={"model": "via-openai", "messages": [
        {"role": "user", "content": _refusing(TEMPLATE_REFUSAL)},
        {"role": "assistant", "content": "ok"},
        {"role": "system", "content": "Be terse."}]})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request" and err["code"] == "unsupported_system_role"
    assert err["message"].startswith("role 'system' is not supported")
    assert "beginning" not in err["message"]


def test_same_upstream_words_without_a_mid_conversation_system_message_stay_generic(http):
    # A leading system message is the top-level one every upstream accepts: the 400
    # is about something else, and the client gets the usual refusal.
    r = http.post("/v1/messages", json={
        "model": "via-anthropic", "max_tokens": 50, "system": "Be terse.",
        "messages": [{"role": "user", "content": _refusing(ANTHROPIC_REFUSAL)}]})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["prism_code"] != "unsupported_system_role"
    assert "system" not in err["message"]


def test_other_refusals_of_a_request_with_one_stay_generic(http):
    r = http.post("/v1/messages", json=_messages("via-anthropic", _refusing("max_tokens too large")))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["prism_code"] != "unsupported_system_role"
    assert "max_tokens" not in r.json()["error"]["message"]


def test_folding_model_serves_and_never_blames_the_system_message(http):
    r = http.post("/v1/messages", json=_messages("folding", "say: hi"))
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "hi"
    # Folded, the request that went up had no system message after a turn, so an
    # upstream 400 is not one about it.
    r = http.post("/v1/messages", json=_messages("folding", _refusing(ANTHROPIC_REFUSAL)))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["prism_code"] != "unsupported_system_role"


# ------------------------------------------------- dropped hosted tools after failover

@pytest.mark.parametrize("stream", [False, True])
def test_dropped_tools_name_what_the_serving_route_left_out(http, stream):
    # The Anthropic route would run web_search but cannot be reached; the Gemini
    # route that answers leaves it out, and the header says so.
    r = http.post("/v1/messages", json={
        "model": "anthropic-then-gemini", "max_tokens": 50, "stream": stream,
        "messages": [{"role": "user", "content": "say: found"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
    assert r.status_code == 200, r.text
    assert r.headers["X-Prism-Failover"] == "true"
    assert r.headers["X-Prism-Dropped-Tools"] == "web_search"
    assert "found" in r.text


@pytest.mark.parametrize("stream", [False, True])
def test_dropped_gemini_tool_after_failover_from_gemini(http, stream):
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    r = http.post(f"/v1beta/models/gemini-then-openai:{method}", json={
        "contents": [{"role": "user", "parts": [{"text": "say: searched"}]}],
        "tools": [{"googleSearch": {}}]})
    assert r.status_code == 200, r.text
    assert r.headers["X-Prism-Failover"] == "true"
    assert r.headers["X-Prism-Dropped-Tools"] == "googleSearch"
    assert "searched" in r.text


def test_nothing_dropped_when_the_route_keeping_the_tool_serves(http):
    r = http.post("/v1/messages", json={
        "model": "via-anthropic", "max_tokens": 50,
        "messages": [{"role": "user", "content": "say: kept"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
    assert r.status_code == 200, r.text
    assert "X-Prism-Dropped-Tools" not in r.headers
    assert json.loads(r.text)["content"][0]["text"] == "kept"


# ------------------------------------------------- an upstream on the Responses API

@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["chat-then-responses", "strict-responses"])
def test_route_that_runs_web_search_serves_it_natively(http, sim_url, model, stream):
    r = http.post("/v1/responses", json={
        "model": model, "input": "say: looked it up", "stream": stream,
        "tools": [{"type": "web_search", "external_web_access": False}]})
    assert r.status_code == 200, r.text
    assert "X-Prism-Dropped-Tools" not in r.headers
    assert r.headers.get("X-Prism-Failover", "false") == "false"   # preferred, not failed over to
    assert "looked it up" in r.text
    assert httpx.get(sim_url + "/_sim/stats").json()["last_tools"] == ["web_search"]


def test_the_chat_route_still_drops_it(http, sim_url):
    r = http.post("/v1/responses", json={
        "model": "via-openai", "input": "say: without", "tools": [{"type": "web_search"}]})
    assert r.status_code == 200, r.text
    assert r.headers["X-Prism-Dropped-Tools"] == "web_search"
    assert httpx.get(sim_url + "/_sim/stats").json()["last_tools"] == []


def test_api_setting_is_checked(tmp_path):
    from gateway.config import ConfigError, parse_config
    raw = harness.gateway_config(tmp_path, "http://127.0.0.1:9")
    raw["providers"][0] = dict(raw["providers"][0], kind="anthropic", api="responses")
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, base_dir=str(tmp_path))
    assert 'api: must be "chat", or "responses" for kind "openai"' in str(exc.value)
