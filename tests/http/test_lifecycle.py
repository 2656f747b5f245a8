"""Gateway lifecycle on real sockets: graceful shutdown, upstream failures at the wire."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

import harness
import store
from store.models import Hold


def _words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def _stream(url: str, key: str, prompt: str, out: dict, name: str) -> None:
    body = {"model": "prism-mini", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    data = b""
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"}) as r:
            out[name + "_id"] = r.headers["x-request-id"]
            for chunk in r.iter_raw():
                data += chunk
    except httpx.HTTPError as exc:
        out[name + "_error"] = type(exc).__name__
    out[name] = data


def test_shutdown_drains_short_streams_and_settles_cut_ones(sim_url, tmp_path):
    gw = harness.start_gateway(tmp_path, sim_url)   # shutdown_grace = 2 s
    key = gw.create_key(credits_usd=1.0)["key"]
    out: dict = {}
    short = threading.Thread(target=_stream, args=(
        gw.url, key, "[[sim chunk_delay_ms=20]] say: " + _words(30), out, "short"))
    long = threading.Thread(target=_stream, args=(
        gw.url, key, "[[sim chunk_delay_ms=100]] say: " + _words(300), out, "long"))
    short.start()
    long.start()
    time.sleep(0.3)
    started = time.monotonic()
    gw.stop()
    took = time.monotonic() - started
    short.join(10)
    long.join(10)
    assert b"data: [DONE]" in out["short"]           # finished inside the grace period
    assert b"data: [DONE]" not in out["long"]         # cut when the grace period ran out
    assert 1.5 < took < 10
    db = store.open_database(gw.db_path)
    try:
        assert store.open_holds(db) == []
        assert store.check_invariants(db) == []
        long_hold = Hold.get(Hold.request_id == out["long_id"])
        assert long_hold.state == "settled" and long_hold.charged_micros > 0
        assert Hold.get(Hold.request_id == out["short_id"]).state == "settled"
    finally:
        db.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("case", ["refused", "timeout"])
def test_unreachable_or_slow_upstream_is_502_and_costs_nothing(sim_url, tmp_path, case):
    url = f"http://127.0.0.1:{_closed_port()}" if case == "refused" else sim_url
    provider = {"id": "up", "kind": "openai", "base_url": url + "/v1",
                "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "read_timeout": 0.3, "connect_timeout": 0.5}
    gw = harness.start_gateway(tmp_path, sim_url, providers=[provider])
    try:
        key = gw.create_key(credits_usd=1.0)
        for stream in (False, True):
            r = httpx.post(gw.url + "/v1/chat/completions", timeout=10,
                           headers={"authorization": f"Bearer {key['key']}"},
                           json={"model": "prism-mini", "stream": stream, "messages": [
                               {"role": "user", "content": "[[sim delay_ms=2000]] hi"}]})
            assert r.status_code == 502, r.text
            err = r.json()["error"]
            assert err["type"] == "provider_error"
            assert "127.0.0.1" not in err["message"]       # nothing about the upstream leaks
        db = gw.db()
        try:
            wallet = store.get_wallet(db, key["account_id"])
            assert wallet.balance_micros == 1_000_000 and wallet.held_micros == 0
            assert store.check_invariants(db) == []
        finally:
            db.close()
    finally:
        gw.stop()


def test_gateway_sends_its_provider_key_upstream(gateway, sim_url):
    key = gateway.create_key(credits_usd=1.0)
    httpx.post(sim_url + "/_sim/reset")
    r = httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key['key']}"},
                   json={"model": "prism-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    stats = httpx.get(sim_url + "/_sim/stats").json()
    assert stats["last_authorization"] == "sk-upstream-test"   # never the client's key


def test_early_refusal_keeps_the_keep_alive_connection_usable(gateway):
    """A 401 sent before the body finished uploading must not wedge the connection."""
    port = int(gateway.url.rsplit(":", 1)[1])
    body = b'{"model":"prism-mini","messages":[{"role":"user","content":"' + b"x" * 200_000 + b'"}]}'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer sk-prism-bad\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        s.sendall(body[:1000])
        time.sleep(0.3)
        s.sendall(body[1000:])
        data = b""
        while b"invalid_api_key" not in data:
            data += s.recv(65536)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while b'"ok"' not in data:
            chunk = s.recv(65536)
            assert chunk, "connection closed instead of answering"
            data += chunk
