"""gateway.server: how long a connection may take, on a real socket.

server.read_timeout bounds a slow request *body*; it must not cut off an answer that
simply takes longer than that to produce (the client sends nothing while it waits).
"""
from __future__ import annotations

import socket
import time

import httpx
import pytest

import harness

READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def quick_timeout_gateway(sim_url, tmp_path_factory):
    gw = harness.start_gateway(tmp_path_factory.mktemp("timeouts"), sim_url,
                               server={"read_timeout": READ_TIMEOUT, "keep_alive_timeout": 1.0})
    yield gw
    gw.stop()


def _headers(gw) -> dict:
    key = gw.create_key(credits_usd=1.0)["key"]
    return {"authorization": f"Bearer {key}"}


def test_slow_upstream_answer_outlives_the_read_timeout(quick_timeout_gateway):
    gw = quick_timeout_gateway
    started = time.monotonic()
    r = httpx.post(gw.url + "/v1/chat/completions", headers=_headers(gw), timeout=30,
                   json={"model": "prism-mini", "messages": [
                       {"role": "user", "content": "[[sim delay_ms=2500]] say: patience"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "patience"
    assert time.monotonic() - started >= 2.5 > READ_TIMEOUT


def test_long_stream_outlives_the_read_timeout(quick_timeout_gateway):
    gw = quick_timeout_gateway
    words = " ".join(f"w{i}" for i in range(30))     # ~100 chars: a dozen chunks
    body = {"model": "prism-mini", "stream": True, "messages": [
        {"role": "user", "content": f"[[sim chunk_delay_ms=250]] say: {words}"}]}
    started = time.monotonic()
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body,
                      headers=_headers(gw), timeout=30) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    assert time.monotonic() - started > 2 * READ_TIMEOUT
    assert text.rstrip().endswith("data: [DONE]")


def _raw_request(gw, data: bytes, wait: float) -> tuple[bytes, float]:
    """Send `data`, then read until the peer closes or `wait` passes; returns what came
    back and how long the first byte (or the close) took."""
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(data)
        sock.settimeout(wait)
        started = time.monotonic()
        first = None
        got = b""
        try:
            while True:
                chunk = sock.recv(65536)
                first = first or time.monotonic()
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            pass
        return got, (first or time.monotonic()) - started


def test_a_stalled_body_is_still_bounded(quick_timeout_gateway):
    gw = quick_timeout_gateway
    auth = _headers(gw)["authorization"].encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: " + auth
            + b"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model")
    got, took = _raw_request(gw, head, wait=10)
    assert got.startswith(b"HTTP/1.1 408 "), got[:100]
    assert took < READ_TIMEOUT + 3


def test_stalled_headers_are_still_bounded(quick_timeout_gateway):
    got, took = _raw_request(quick_timeout_gateway,
                             b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n", wait=10)
    assert got == b""           # closed by keep_alive_timeout, not left open
    assert took < 1.0 + 3


def test_a_connection_left_silent_is_closed_after_the_longest_request(sim_url, tmp_path):
    """The backstop: a connection nobody speaks on for max_request_seconds +
    read_timeout is closed, whatever state it was left in (here: a 408 answered while
    the body was still owed, which hypercorn cannot recycle)."""
    gw = harness.start_gateway(tmp_path, sim_url, server={
        "read_timeout": 0.5, "keep_alive_timeout": 0.5, "max_request_seconds": 1.0})
    try:
        auth = _headers(gw)["authorization"].encode()
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: " + auth
                + b"\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head)
            sock.settimeout(15)
            started = time.monotonic()
            got = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
            closed_after = time.monotonic() - started
        assert got.startswith(b"HTTP/1.1 408 "), got[:80]
        assert closed_after < 1.0 + 0.5 + 3
    finally:
        gw.stop()
