"""POST /v1/chat/completions on the lean ASGI path (gateway/http/lean.py): the edges the
SDK tests do not reach, answered exactly as the Quart routes answer them."""
from __future__ import annotations

import httpx
import pytest

import harness


@pytest.fixture(scope="module")
def small_gw(sim_url, tmp_path_factory):
    gw = harness.start_gateway(tmp_path_factory.mktemp("lean"), sim_url,
                               server={"max_body_bytes": 2048})
    yield gw
    gw.stop()


def _rows(gw, request_id: str) -> list:
    db = gw.db()
    try:
        return db.execute_sql("SELECT status, error_type FROM request_log WHERE request_id = ?",
                              (request_id,)).fetchall()
    finally:
        db.close()


def test_bad_json_is_a_400_in_openai_shape_with_a_logged_row(small_gw):
    key = small_gw.create_key()["key"]
    r = httpx.post(small_gw.url + "/v1/chat/completions", content=b"{nope",
                   headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request"
    assert "not valid JSON" in r.json()["error"]["message"]
    rid = r.headers["x-request-id"]
    assert _rows(small_gw, rid) == [(400, "invalid_request")]


def test_bad_key_is_a_401_before_the_body_is_decoded(small_gw):
    r = httpx.post(small_gw.url + "/v1/chat/completions", content=b"{nope",
                   headers={"authorization": "Bearer sk-prism-wrong"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_api_key"


def test_chunked_body_past_the_limit_is_a_413(small_gw):
    key = small_gw.create_key()["key"]

    def chunks():
        for _ in range(8):
            yield b" " * 512   # no Content-Length: the limit is only found while reading

    r = httpx.post(small_gw.url + "/v1/chat/completions", content=chunks(),
                   headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "request_too_large"


def test_success_carries_the_generation_headers(small_gw):
    key = small_gw.create_key()["key"]
    r = httpx.post(small_gw.url + "/v1/chat/completions", headers={
        "authorization": f"Bearer {key}"}, json={
        "model": "prism-mini", "messages": [{"role": "user", "content": "say: hi"}]})
    assert r.status_code == 200, r.text
    for name in ("x-prism-model", "x-prism-cost", "x-prism-tokens-in", "x-prism-tokens-out",
                 "x-request-id", "content-length"):
        assert name in r.headers
    assert r.json()["choices"][0]["message"]["content"]
    assert _rows(small_gw, r.headers["x-request-id"]) == [(200, None)]
