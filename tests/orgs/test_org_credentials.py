"""An org's own provider credential: its members' requests reach the upstream with it
(the HTTP simulator records the credential it was sent), everyone else's with the
gateway's; the credential appears in no response, log line, metric, dashboard frame
or database file in plain text."""
from __future__ import annotations

import glob
import logging
import os
import socket

import httpx

import store

from org_helpers import member, put_org
from gateway.control import wire

SECRET = "sk-org-own-" + os.urandom(12).hex()
CHAT = {"model": "prism-mini", "max_tokens": 20,
        "messages": [{"role": "user", "content": "say: hello"}]}


def _last_credential(sim_url: str) -> str:
    return httpx.get(sim_url + "/_sim/stats").json()["last_authorization"]


def _control_frames(path: str) -> bytes:
    """Everything the dashboard is sent for its screens, as raw frames."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    raw = b""
    decoder = wire.FrameDecoder()
    try:
        for i, kind in enumerate((wire.ListOrgs, wire.ListProviders, wire.ListModels,
                                  wire.ListAccounts, wire.ListKeys, wire.ListHolds), 1):
            sock.sendall(wire.encode(kind(id=i)))
            got: list = []
            while not any(isinstance(m, (wire.Result, wire.Error)) for m in got):
                data = sock.recv(65536)
                raw += data
                got += decoder.feed(data)
            assert isinstance(got[-1], wire.Result), got[-1]
    finally:
        sock.close()
    return raw


def test_org_credential_is_used_and_never_shown(org_gw, org_sim, caplog):
    caplog.set_level(logging.INFO)   # third-party DEBUG traces print raw headers
    put_org(org_gw, "byok", name="Bring your own key", credentials={"up": SECRET})
    inside = member(org_gw, "byok", name="inside")
    outside = org_gw.create_key(name="outside")
    responses: list[httpx.Response] = []

    def chat(key: str, **extra) -> httpx.Response:
        r = httpx.post(org_gw.url + "/v1/chat/completions", json={**CHAT, **extra}, timeout=30,
                       headers={"authorization": f"Bearer {key}"})
        responses.append(r)
        assert r.status_code == 200, r.text
        return r

    chat(inside["key"])
    assert _last_credential(org_sim) == SECRET
    chat(outside["key"])
    assert _last_credential(org_sim) == os.environ["PRISM_TEST_UPSTREAM_KEY"]
    chat(inside["key"], stream=True)
    assert _last_credential(org_sim) == SECRET

    # A config update that leaves credentials out keeps them.
    put_org(org_gw, "byok", name="Renamed", budget_usd=3)
    chat(inside["key"])
    assert _last_credential(org_sim) == SECRET

    admin = org_gw.admin
    for path in ("/-/orgs/configs", "/-/orgs/byok/config", "/-/health/providers/byok",
                 "/-/keys", f"/-/keys/{inside['id']}", "/-/config", "/-/health/providers",
                 "/-/metrics"):
        responses.append(admin.get(path))
        assert responses[-1].status_code == 200, (path, responses[-1].text)
    assert "prism_" in responses[-1].text       # the metrics page, really
    health = responses[-6].json()
    assert {r["credential"] for r in health["routes"]} == {"org"}
    assert responses[-8].json()["data"][-1]["credential_providers"] == ["up"] or any(
        o["credential_providers"] == ["up"] for o in responses[-8].json()["data"])
    for r in responses:
        assert SECRET not in r.text and SECRET not in str(r.headers), r.request.url

    frames = _control_frames(org_gw.socket_path)
    assert b"byok" in frames and SECRET.encode() not in frames

    assert SECRET not in caplog.text
    # Every column of every table, as text (either engine)...
    db = org_gw.db()
    try:
        cells = []
        for model in store.MODELS:
            table = model._meta.table_name
            for row in db.execute_sql(f'SELECT * FROM "{table}"').fetchall():
                cells += [str(v) for v in row]
    finally:
        db.close()
    dump = "\n".join(cells)
    assert "byok" in dump and "credential_providers" in dump
    assert SECRET not in dump
    # ...and, on SQLite, the file and its WAL byte by byte.
    files = glob.glob(org_gw.db_path + "*")
    if os.path.exists(org_gw.db_path):
        stored = b"".join(open(f, "rb").read() for f in files)
        assert b"byok" in stored
        assert SECRET.encode() not in stored


def test_credentials_need_the_secrets_key(org_gw, monkeypatch):
    # The org service read its key at start-up; a config for an unknown provider is
    # refused by name whatever the key.
    r = org_gw.admin.put("/-/orgs/nokey/config", json={"credentials": {"ghost": "x"}})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "config.credentials.ghost"


async def _echo_app(scope, receive, send) -> None:
    """A careless upstream: refuses every call, quoting the credential it was sent."""
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
    while (await receive()).get("more_body"):
        pass
    cred = dict(scope["headers"]).get(b"authorization", b"").removeprefix(b"Bearer ").decode()
    body = ('{"error": {"message": "Incorrect API key provided: %s", "type": '
            '"invalid_request_error", "code": "invalid_api_key"}}' % cred).encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"),
                            (b"x-echo-key", cred.encode())]})
    await send({"type": "http.response.body", "body": body})


def test_an_upstream_quoting_the_org_credential_never_leaks_it(tmp_path, caplog, monkeypatch):
    import trio
    from hypercorn.config import Config as HyperConfig
    from hypercorn.trio import serve

    import harness

    async def run(stop, task_status=trio.TASK_STATUS_IGNORED):
        cfg = HyperConfig()
        cfg.bind = ["127.0.0.1:0"]
        cfg.accesslog = None
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, _echo_app, cfg)
            task_status.started(binds[0])
            await stop.wait()
            nursery.cancel_scope.cancel()

    monkeypatch.setenv("PRISM_ORG_SECRETS_KEY", "echo-test-key")
    caplog.set_level(logging.INFO)   # third-party DEBUG traces print raw headers
    echo = harness.ServerThread(run).start()
    gw = harness.start_gateway(tmp_path, echo.url)
    try:
        put_org(gw, "leaky", credentials={"up": SECRET})
        key = member(gw, "leaky")["key"]
        for stream in (False, True):
            r = httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "stream": stream},
                           headers={"authorization": f"Bearer {key}"}, timeout=30)
            assert r.status_code >= 400 or "error" in r.text, r.text
            assert SECRET not in r.text and SECRET not in str(r.headers)
        # The operator still learns what the upstream said, redacted.
        assert "Incorrect API key provided" in caplog.text
        assert SECRET not in caplog.text
    finally:
        gw.stop()
        echo.stop()
