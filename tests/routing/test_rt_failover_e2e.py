"""Failover and circuit breaking through the whole stack: a real gateway, the HTTP
simulator, and a fault proxy in front of the first route (see faultproxy.py).

Every test checks the money too: however many routes a request tried, it has one hold
and that hold ended once.
"""
from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

import harness
import store
from faultproxy import FaultProxy
from store.models import Hold, LedgerEntry, RequestLog

KEY_ENV = "PRISM_TEST_UPSTREAM_KEY"


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _provider(pid: str, base: str, timeout: float = 30.0) -> dict:
    return {"id": pid, "kind": "openai", "base_url": base + "/v1", "api_key_env": KEY_ENV,
            "read_timeout": timeout, "connect_timeout": min(timeout, 5.0)}


def _model(mid: str, *routes: tuple[str, str], **extra) -> dict:
    return {"id": mid, "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
            "max_output_tokens": 1000, "capabilities": ["chat", "tools", "json"],
            "routes": [{"provider": p, "model": m} for p, m in routes], **extra}


@pytest.fixture(scope="module")
def proxy(sim_url):
    p = FaultProxy(sim_url).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def gw(sim_url, proxy, tmp_path_factory):
    dead = f"http://127.0.0.1:{_closed_port()}"
    providers = [_provider("primary", proxy.url, timeout=1.0), _provider("backup", sim_url),
                 _provider("backup2", sim_url), _provider("dead", dead)]
    models = [
        # One model per fault so that each test's first route has a breaker of its own.
        _model("duo-500", ("primary", "up-500"), ("backup", "up-backup"), aliases=["duo"]),
        _model("duo-429", ("primary", "up-429"), ("backup", "up-backup")),
        _model("duo-slow", ("primary", "up-slow"), ("backup", "up-backup")),
        _model("duo-reset", ("primary", "up-reset"), ("backup", "up-backup")),
        _model("duo-pass", ("primary", "up-pass"), ("backup", "up-backup"), aliases=["pass"]),
        _model("dead-first", ("dead", "up-dead"), ("backup", "up-backup")),
        _model("twin", ("backup", "twin-1"), ("backup2", "twin-2")),
    ]
    g = harness.start_gateway(tmp_path_factory.mktemp("failover"), sim_url, providers=providers,
                              models=models, routing={"breaker_failures": 50})
    yield g
    g.stop()


@pytest.fixture
def key(gw):
    return gw.create_key(credits_usd=5.0)


def _post(gw, key, model, text="say: hello", stream=False, **headers):
    h = {"authorization": f"Bearer {key['key']}", **headers}
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
    with httpx.Client(base_url=gw.url, timeout=60) as client:
        r = client.post("/v1/chat/completions", json=body, headers=h)
        r.read()
        return r


def _one_settlement(gw, request_id: str, state: str = "settled") -> RequestLog:
    db = gw.db()
    try:
        holds = list(Hold.select().where(Hold.request_id == request_id))
        assert len(holds) == 1 and holds[0].state == state, [h.state for h in holds]
        kinds = [e.kind for e in LedgerEntry.select().where(LedgerEntry.request_id == request_id)]
        assert sorted(kinds) == sorted(["hold", {"settled": "settle", "voided": "void"}[state]])
        assert store.check_invariants(db) == []
        return RequestLog.get_by_id(request_id)
    finally:
        db.close()


def _sse_text(r: httpx.Response) -> str:
    out = []
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                out.append((choice.get("delta") or {}).get("content") or "")
    return "".join(out)


@pytest.mark.parametrize("stream", [False, True])
def test_failover_on_500(gw, key, proxy, stream):
    proxy.set("status", 500)
    r = _post(gw, key, "duo-500", stream=stream)
    assert r.status_code == 200, r.text
    assert r.headers["x-prism-failover"] == "true"
    assert r.headers["x-prism-model"] == "duo-500"
    assert (_sse_text(r) if stream else r.json()["choices"][0]["message"]["content"]) == "hello"
    log = _one_settlement(gw, r.headers["x-request-id"])
    assert log.failover and log.provider == "backup" and log.upstream_model == "up-backup"


def test_failover_on_429(gw, key, proxy):
    proxy.set("status", 429)
    r = _post(gw, key, "duo-429")
    assert r.status_code == 200 and r.headers["x-prism-failover"] == "true"
    _one_settlement(gw, r.headers["x-request-id"])


@pytest.mark.parametrize("stream", [False, True])
def test_failover_on_timeout(gw, key, proxy, stream):
    proxy.set("hang")
    started = time.monotonic()
    r = _post(gw, key, "duo-slow", stream=stream)
    assert r.status_code == 200, r.text
    assert r.headers["x-prism-failover"] == "true"
    assert 0.9 < time.monotonic() - started < 10       # the primary's 1 s read timeout
    _one_settlement(gw, r.headers["x-request-id"])


@pytest.mark.parametrize("stream", [False, True])
def test_failover_on_connection_reset_before_the_first_byte(gw, key, proxy, stream):
    proxy.set("reset")
    r = _post(gw, key, "duo-reset", stream=stream)
    assert r.status_code == 200, r.text
    assert r.headers["x-prism-failover"] == "true"
    _one_settlement(gw, r.headers["x-request-id"])


def test_failover_on_connection_refused(gw, key):
    r = _post(gw, key, "dead-first", stream=True)
    assert r.status_code == 200 and r.headers["x-prism-failover"] == "true"
    assert _sse_text(r) == "hello"
    _one_settlement(gw, r.headers["x-request-id"])


def test_no_failover_header_when_the_first_route_answers(gw, key, proxy):
    proxy.set("pass")
    r = _post(gw, key, "duo-pass")
    assert r.status_code == 200 and "x-prism-failover" not in r.headers


def test_upstream_gets_the_upstream_model_id_never_the_public_one(gw, key, proxy):
    proxy.set("pass")
    before = len(proxy.bodies)
    r = _post(gw, key, "pass", text="say: which model")
    assert r.status_code == 200
    assert r.json()["model"] == "duo-pass"            # the client sees the public id
    assert r.headers["x-prism-model"] == "duo-pass"
    sent = proxy.bodies[before:]
    assert [b["model"] for b in sent] == ["up-pass"]  # the upstream sees its own id


def test_no_failover_after_the_first_byte(gw, key, sim_url):
    httpx.post(sim_url + "/_sim/reset")
    r = _post(gw, key, "twin", text="[[sim disconnect_after=3 chunk_chars=2]] say: a longer reply "
                                     "that is cut in the middle", stream=True)
    assert r.status_code == 200
    assert "x-prism-failover" not in r.headers
    assert '"error"' in r.text and "[DONE]" not in r.text     # told in-band, no retry
    assert httpx.get(sim_url + "/_sim/stats").json()["requests"] == 1
    log = _one_settlement(gw, r.headers["x-request-id"])
    assert log.estimated and not log.failover and log.upstream_model == "twin-1"


def test_every_route_failing_is_one_502_naming_nothing_secret(gw, key, sim_url):
    httpx.post(sim_url + "/_sim/reset")
    for stream in (False, True):
        r = _post(gw, key, "twin", text="[[sim status=503]] hi", stream=stream)
        assert r.status_code == 502, r.text
        err = r.json()["error"]
        assert err["type"] == "provider_error"
        assert "twin" in err["message"]
        for secret in ("127.0.0.1", "http", "sk-upstream-test", "backup", "twin-1", "503"):
            assert secret not in err["message"], (secret, err["message"])
        _one_settlement(gw, r.headers["x-request-id"], state="voided")
    assert httpx.get(sim_url + "/_sim/stats").json()["requests"] == 4   # 2 routes x 2 calls


def test_breaker_opens_skips_then_probes_and_closes(sim_url, proxy, tmp_path, monkeypatch):
    """End to end with a real clock: 2 failures open the primary's breaker; while open
    it is not called at all; after the cooldown one probe goes through and, once the
    upstream is healthy again, closes it."""
    import gateway.server as server
    built = []
    real_build = server.build_services

    def spy(*args, **kwargs):
        built.append(real_build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(server, "build_services", spy)
    g = harness.start_gateway(
        tmp_path, sim_url, providers=[_provider("primary", proxy.url, 2.0), _provider("backup", sim_url)],
        models=[_model("duo", ("primary", "up-brk"), ("backup", "up-backup"))],
        routing={"breaker_failures": 2, "breaker_cooldown": 1.0})
    try:
        dispatcher = built[0].dispatcher
        k = g.create_key(credits_usd=5.0)
        proxy.set("status", 500)

        def state():
            return dispatcher.breaker_states()["primary/up-brk"]

        assert state()["state"] == "closed"
        for _ in range(2):
            assert _post(g, k, "duo").headers["x-prism-failover"] == "true"
        assert state()["state"] == "open" and state()["consecutive_failures"] == 2
        assert dispatcher.provider_breaker_states() == {"primary": "open", "backup": "closed"}

        seen = proxy.connections
        r = _post(g, k, "duo")                       # open: primary skipped, not called
        assert r.status_code == 200 and r.headers["x-prism-failover"] == "true"
        assert proxy.connections == seen

        time.sleep(1.1)                              # cooldown over: one probe, which fails
        _post(g, k, "duo")
        assert proxy.connections == seen + 1 and state()["state"] == "open"

        proxy.set("pass")
        time.sleep(1.1)
        r = _post(g, k, "duo")                       # the probe succeeds: closed again
        assert r.status_code == 200 and "x-prism-failover" not in r.headers
        assert state()["state"] == "closed" and state()["consecutive_failures"] == 0
        r = _post(g, k, "duo")
        assert "x-prism-failover" not in r.headers
    finally:
        g.stop()


def test_every_breaker_open_fails_fast(sim_url, tmp_path):
    """A model whose only route's breaker is open answers 502 at once, without calling
    the upstream, and says when to retry."""
    g = harness.start_gateway(
        tmp_path, sim_url, providers=[_provider("only", sim_url)],
        models=[_model("solo", ("only", "up-solo"))],
        routing={"breaker_failures": 1, "breaker_cooldown": 30.0})
    try:
        k = g.create_key(credits_usd=5.0)
        assert _post(g, k, "solo", text="[[sim status=500]] x").status_code == 502
        httpx.post(sim_url + "/_sim/reset")
        r = _post(g, k, "solo", text="say: fine")
        assert r.status_code == 502 and int(r.headers["retry-after"]) >= 29
        assert "paused" in r.json()["error"]["message"]
        assert httpx.get(sim_url + "/_sim/stats").json()["requests"] == 0
        _one_settlement(g, r.headers["x-request-id"], state="voided")
    finally:
        g.stop()
