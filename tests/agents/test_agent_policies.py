"""The per-model policies the agents need, over HTTP: drop_params and hosted_tools."""
from __future__ import annotations

import httpx
import pytest

import harness


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    providers, models = harness.upstream_providers(sim_url)
    by_id = {m["id"]: m for m in models}
    models += [
        dict(by_id["via-openai"], id="picky", drop_params=["temperature", "top_p", "seed"]),
        dict(by_id["via-openai"], id="strict-openai", hosted_tools="refuse"),
        dict(by_id["via-anthropic"], id="openai-then-gemini", routes=[
            {"provider": "sim-openai", "model": "a"}, {"provider": "sim-gemini", "model": "b"}]),
    ]
    g = harness.start_gateway(tmp_path_factory.mktemp("policies"), sim_url,
                              providers=providers, models=models)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def http(gw):
    key = gw.create_key(credits_usd=20)["key"]
    with httpx.Client(base_url=gw.url, timeout=30, headers={
            "authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}) as c:
        yield c


def test_drop_params_removes_and_names_what_was_sent(http):
    r = http.post("/v1beta/models/picky:generateContent", json={
        "contents": [{"role": "user", "parts": [{"text": "say: ok"}]}],
        "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64}})
    assert r.status_code == 200, r.text
    assert r.headers["X-Prism-Dropped-Params"] == "temperature, top_p"
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "ok"
    plain = http.post("/v1/chat/completions", json={
        "model": "picky", "messages": [{"role": "user", "content": "say: ok"}]})
    assert plain.status_code == 200 and "X-Prism-Dropped-Params" not in plain.headers


@pytest.mark.parametrize("stream", [False, True])
def test_hosted_tool_is_dropped_by_default_and_said_so(http, stream):
    r = http.post("/v1/responses", json={
        "model": "via-anthropic", "input": "say: fine", "stream": stream,
        "tools": [{"type": "web_search", "external_web_access": False}]})
    assert r.status_code == 200, r.text
    assert r.headers["X-Prism-Dropped-Tools"] == "web_search"
    assert "fine" in r.text


@pytest.mark.parametrize("path,body,name,words", [
    ("/v1/responses", {"model": "strict-openai", "input": "hi", "tools": [{"type": "web_search"}]},
     "web_search", "hosted_tools"),
    ("/v1/messages", {"model": "strict-openai", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "hi"}],
                      "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
     "web_search", "hosted_tools"),
])
def test_refuse_policy_is_a_400_naming_the_setting(http, path, body, name, words):
    r = http.post(path, json=body)
    assert r.status_code == 400, r.text
    text = r.text
    assert "not supported" in text and name in text and words in text
    if path == "/v1/messages":
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and err["prism_code"] == "unsupported_tool"


def test_routes_that_keep_the_tool_go_first(http):
    r = http.post("/v1beta/models/openai-then-gemini:generateContent", json={
        "contents": [{"role": "user", "parts": [{"text": "say: searched"}]}],
        "tools": [{"googleSearch": {}}]})
    assert r.status_code == 200, r.text
    assert "X-Prism-Dropped-Tools" not in r.headers   # the Gemini route runs it
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "searched"


def test_error_vocabulary_per_dialect(http):
    anth = http.post("/v1/messages", json={"model": "nope", "max_tokens": 5,
                                           "messages": [{"role": "user", "content": "x"}]})
    assert anth.status_code == 404
    assert anth.json()["error"]["type"] == "not_found_error"
    assert anth.json()["error"]["prism_code"] == "model_not_found"
    gem = http.post("/v1beta/models/nope:generateContent",
                    json={"contents": [{"parts": [{"text": "x"}]}]})
    assert gem.status_code == 404 and gem.json()["error"]["status"] == "NOT_FOUND"
    oai = http.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    assert oai.status_code in (400, 404) and "type" in oai.json()["error"]


def test_claude_code_mid_conversation_system_message(http):
    r = http.post("/v1/messages", json={"model": "via-anthropic", "max_tokens": 50, "messages": [
        {"role": "user", "content": "say: hi"}, {"role": "system", "content": "Be terse."}]})
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "hi"


def test_config_checks_the_policies(tmp_path):
    from gateway.config import ConfigError, parse_config
    raw = harness.gateway_config(tmp_path, None)
    raw["models"][0] = dict(raw["models"][0], drop_params=["temprature"], hosted_tools="maybe")
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, base_dir=str(tmp_path))
    assert "drop_params: 'temprature' is not one of" in str(exc.value)
    assert 'hosted_tools: must be "drop" or "refuse"' in str(exc.value)


def test_fold_moves_mid_conversation_system_messages_to_the_front():
    from gateway import canonical as c
    from gateway.routing.hosted import fold_system
    msgs = (c.Message("user", (c.TextPart("a"),)), c.Message("system", (c.TextPart("s"),)),
            c.Message("assistant", (c.TextPart("b"),)))
    req = c.Request(model="m", messages=msgs)
    assert [m.role for m in fold_system(req).messages] == ["system", "user", "assistant"]
    ordered = c.Request(model="m", messages=(msgs[1], msgs[0]))
    assert fold_system(ordered) is ordered


def test_smart_routing_prefers_a_model_that_runs_the_hosted_tool(tmp_path):
    from gateway.codecs import gemini
    from gateway.config import parse_config
    from gateway.routing.catalog import Catalog
    from gateway.routing.select import select
    raw = harness.gateway_config(tmp_path, "http://127.0.0.1:9", upstream_kinds=harness.UPSTREAM_KINDS)
    catalog = Catalog(parse_config(raw, base_dir=str(tmp_path)))
    body = {"contents": [{"parts": [{"text": "news today?"}]}], "tools": [{"googleSearch": {}}]}
    for mode in ("eco", "balanced", "sport"):
        picked = select(catalog, gemini.to_canonical_request(body, model="any", stream=False), mode=mode)
        assert picked.entry.model.id == "via-gemini", mode
