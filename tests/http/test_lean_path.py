"""POST /v1/chat/completions on the lean ASGI path (gateway/http/lean.py): the edges the
SDK tests do not reach, answered exactly as the Quart routes answer them."""
from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

import harness


@pytest.fixture(scope="module")
def small_gw(sim_url, tmp_path_factory):
    gw = harness.start_gateway(tmp_path_factory.mktemp("lean"), sim_url,
                               server={"max_body_bytes": 2048, "read_timeout": 1})
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


def test_a_body_that_stalls_is_a_408_after_the_read_timeout(small_gw):
    """The body's deadline is the request scope's first one (server.read_timeout = 1 s
    here); once it passes the client hears a 408 in its dialect and the row is logged."""
    key = small_gw.create_key()["key"]
    u = urlsplit(small_gw.url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                     b"authorization: Bearer " + key.encode() + b"\r\n"
                     b"content-type: application/json\r\ncontent-length: 60\r\n\r\n"
                     b'{"model": "prism-mini",')
        started = time.monotonic()
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            raw += data
        waited = time.monotonic() - started
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), raw
    assert 0.8 < waited < 8
    assert json.loads(body)["error"]["type"] == "invalid_request"
    rid = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
               if line.lower().startswith(b"x-request-id"))
    assert _rows(small_gw, rid) == [(408, "invalid_request")]
