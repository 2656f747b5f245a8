"""Provider key rotation over real sockets: the gateway in front of the HTTP simulator,
whose /_sim/stats counts chat calls per credential (its last 12 characters) and which
refuses any key starting with sk-sim-revoked with a 401."""
from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

import httpx
import pytest
import trio

import harness

OLD_KEY = "sk-upstream-test"          # harness default for PRISM_TEST_UPSTREAM_KEY
NEW_ENV = "PRISM_TEST_ROTATION_KEY"
NEW_KEY = "sk-upstream-rotated-1"
SEALED_KEY_ENV = "PRISM_SECRET_KEY"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("PRISM_TEST_UPSTREAM_KEY", OLD_KEY)
    monkeypatch.setenv(NEW_ENV, NEW_KEY)
    monkeypatch.setenv(SEALED_KEY_ENV, secrets.token_urlsafe(40))


@pytest.fixture
def sim():
    s = harness.start_simulator()
    yield s
    s.stop()


def _stats(sim) -> dict[str, int]:
    return httpx.get(sim.url + "/_sim/stats").json()["by_credential"]


def _reset(sim) -> None:
    httpx.post(sim.url + "/_sim/reset")


def _body(text: str = "hello") -> dict:
    return {"model": "prism-mini", "messages": [{"role": "user", "content": text}],
            "max_tokens": 20}


def _chat(gw, key: str, n: int, *, during=None, stream_every: int = 0) -> list[int]:
    """n concurrent chat calls; `during(admin)` runs once a quarter of them have been
    answered (so the step lands mid-load, whatever the machine's speed)."""
    statuses: list[int] = []

    async def main() -> None:
        limits = httpx.Limits(max_connections=n + 4)
        async with httpx.AsyncClient(base_url=gw.url, limits=limits, timeout=60,
                                     headers={"authorization": f"Bearer {key}"}) as client, \
                httpx.AsyncClient(base_url=gw.url, timeout=60, headers={
                    "authorization": f"Bearer {harness.ADMIN_TOKEN}"}) as admin:
            half = trio.Event()

            async def one(i: int) -> None:
                body = _body(f"call {i}")
                if stream_every and i % stream_every == 0:
                    async with client.stream("POST", "/v1/chat/completions",
                                             json={**body, "stream": True}) as r:
                        text = (await r.aread()).decode()
                        assert "[DONE]" in text, text
                        statuses.append(r.status_code)
                else:
                    r = await client.post("/v1/chat/completions", json=body)
                    statuses.append(r.status_code)
                if len(statuses) >= n // 4:
                    half.set()

            async with trio.open_nursery() as nursery:
                for i in range(n):
                    nursery.start_soon(one, i)
                if during is not None:
                    await half.wait()
                    await during(admin)

    trio.run(main)
    return statuses


def test_promote_and_rollback_under_load_fail_no_request(sim, env, tmp_path,
                                                           store_overrides):
    gw = harness.start_gateway(tmp_path, sim.url, store=store_overrides)
    try:
        key = gw.create_key(credits_usd=100.0)["key"]
        r = gw.admin.post("/-/admin/providers/up/rotate", json={"api_key_env": NEW_ENV,
                                                                "share": 0.5})
        assert r.status_code == 201, r.text
        assert r.json()["state"] == "rotating"
        _reset(sim)

        async def promote(admin) -> None:
            resp = await admin.post("/-/admin/providers/up/rotate/promote")
            assert resp.status_code == 200, resp.text

        statuses = _chat(gw, key, 200, during=promote, stream_every=5)
        assert statuses == [200] * 200
        used = _stats(sim)
        assert used.get(OLD_KEY[-12:], 0) > 0 and used.get(NEW_KEY[-12:], 0) > 0
        view = gw.admin.get("/-/admin/providers/up/rotation").json()
        assert view["state"] == "steady"
        assert [c["label"] for c in view["credentials"]] == [f"env:{NEW_ENV}"]
        # After the promotion every call uses the new key.
        _reset(sim)
        assert _chat(gw, key, 20) == [200] * 20
        assert _stats(sim) == {NEW_KEY[-12:]: 20}

        # Rotate again (back to the first key's variable), roll back under load.
        r = gw.admin.post("/-/admin/providers/up/rotate",
                          json={"api_key_env": "PRISM_TEST_UPSTREAM_KEY", "share": 0.5})
        assert r.status_code == 201, r.text
        r = gw.admin.post("/-/admin/providers/up/rotate/share", json={"share": 0.25})
        assert r.status_code == 200 and r.json()["share"] == 0.25
        assert [c["share"] for c in r.json()["credentials"]] == [0.75, 0.25]
        assert gw.admin.post("/-/admin/providers/up/rotate/share",
                             json={"share": 2}).status_code == 400
        _reset(sim)

        async def rollback(admin) -> None:
            resp = await admin.post("/-/admin/providers/up/rotate/rollback")
            assert resp.status_code == 200, resp.text

        assert _chat(gw, key, 200, during=rollback, stream_every=7) == [200] * 200
        view = gw.admin.get("/-/admin/providers/up/rotation").json()
        assert view["state"] == "steady"
        assert [c["label"] for c in view["credentials"]] == [f"env:{NEW_ENV}"]
        actions = [h["action"] for h in view["history"]]
        assert actions == ["provider.rotation.rollback", "provider.rotation.share",
                           "provider.rotation.start", "provider.rotation.promote",
                           "provider.rotation.start"]
        # Steps that do not fit the state are refused, not guessed at.
        assert gw.admin.post("/-/admin/providers/up/rotate/promote").status_code == 409
        assert gw.admin.post("/-/admin/providers/nope/rotate/promote").status_code == 404
        r = gw.admin.post("/-/admin/providers/up/rotate", json={"api_key_env": "NOT_SET_ANYWHERE"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "api_key_env"
    finally:
        gw.stop()


def test_refused_new_credential_rolls_back_and_no_call_fails(sim, env, tmp_path,
                                                              store_overrides):
    gw = harness.start_gateway(tmp_path, sim.url, store=store_overrides)
    try:
        key = gw.create_key(credits_usd=100.0)["key"]
        bad = "sk-sim-revoked-" + secrets.token_hex(8)
        r = gw.admin.post("/-/admin/providers/up/rotate", json={"api_key": bad, "share": 1.0})
        assert r.status_code == 201, r.text
        assert r.json()["credentials"][1]["share"] == 1.0
        assert _chat(gw, key, 60, stream_every=4) == [200] * 60
        view = gw.admin.get("/-/admin/providers/up/rotation").json()
        assert view["state"] == "steady"
        assert [c["label"] for c in view["credentials"]] == ["env:PRISM_TEST_UPSTREAM_KEY"]
        rollback = view["history"][0]
        assert rollback["action"] == "provider.rotation.rollback"
        assert rollback["actor"] == "auto" and "401/403" in rollback["detail"]["reason"]
        used = _stats(sim)
        assert used[bad[-12:]] >= 1          # it was tried ...
        assert used[OLD_KEY[-12:]] == 60     # ... and every call was served on the old key
    finally:
        gw.stop()


def test_rotation_survives_restart_and_sealed_value_is_never_plain(sim, env, tmp_path, caplog,
                                                                  store_overrides):
    caplog.set_level(logging.DEBUG)
    where = store_overrides   # one store for the three runs
    secret = "sk-upstream-sealed-" + secrets.token_hex(12)
    seen: list[str] = []
    gw = harness.start_gateway(tmp_path, sim.url, store=where)
    try:
        key = gw.create_key(credits_usd=100.0)["key"]
        r = gw.admin.post("/-/admin/providers/up/rotate", json={"api_key": secret, "share": 0.5})
        assert r.status_code == 201, r.text
        seen.append(r.text)
        label = r.json()["credentials"][1]["label"]
        assert label.startswith("sha256:")
        seen.append(gw.admin.get("/-/admin/providers/up/rotation").text)
        seen.append(gw.admin.get("/-/config").text)
    finally:
        gw.stop()

    gw = harness.start_gateway(tmp_path, sim.url, store=where)   # same store
    try:
        r = gw.admin.get("/-/admin/providers/up/rotation")
        seen.append(r.text)
        view = r.json()
        assert view["state"] == "rotating" and view["share"] == 0.5
        assert [c["label"] for c in view["credentials"]] == ["env:PRISM_TEST_UPSTREAM_KEY", label]
        _reset(sim)
        assert _chat(gw, key, 40) == [200] * 40
        used = _stats(sim)
        assert used.get(secret[-12:], 0) > 0 and used.get(OLD_KEY[-12:], 0) > 0
        view = gw.admin.get("/-/admin/providers/up/rotation").json()
        counts = {c["slot"]: c["requests"] for c in view["credentials"]}
        assert counts["current"] + counts["new"] == 40 and counts["new"] == used[secret[-12:]]
        r = gw.admin.post("/-/admin/providers/up/rotate/promote")
        seen.append(r.text)
        # An upstream that echoes the key in its error: the client never sees it.
        r = httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json=_body(f'[[sim status=500 message="bad key {secret}"]]'), timeout=30)
        seen.append(r.text)
        assert r.status_code == 502
    finally:
        gw.stop()

    gw = harness.start_gateway(tmp_path, sim.url, store=where)
    try:
        view = gw.admin.get("/-/admin/providers/up/rotation").json()
        assert view["state"] == "steady"
        assert [c["label"] for c in view["credentials"]] == [label]
        _reset(sim)
        assert _chat(gw, key, 10) == [200] * 10
        assert _stats(sim) == {secret[-12:]: 10}
        seen.append(gw.admin.get("/-/admin/providers/up/rotation").text)
        db = gw.db()
        try:   # every column of every table that could hold it, on either engine
            for table in ("provider_credential", "audit_log", "cluster_event", "request_log"):
                rows = db.execute_sql(f"SELECT * FROM {table}").fetchall()
                assert rows or table == "request_log"
                assert secret not in repr(rows), table
            sealed = db.execute_sql("SELECT current_sealed FROM provider_credential").fetchone()
            assert sealed[0] and secret[-12:] not in sealed[0]
        finally:
            db.close()
        for path in ("/-/metrics", "/-/health/providers", "/-/config", "/-/cluster/nodes"):
            seen.append(gw.admin.get(path).text)
    finally:
        gw.stop()

    for text in seen:
        assert secret not in text
    assert secret not in caplog.text
    for path in Path(tmp_path).glob("prism.db*"):
        assert secret.encode() not in path.read_bytes(), path
    assert os.environ.get(SEALED_KEY_ENV)


def test_rotated_credentials_follow_a_config_reload(env, tmp_path):
    """A reload that moves the provider (here to another upstream) moves the rotated
    credential's calls with it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scale"))
    from nodes import to_toml
    first, second = harness.start_simulator(), harness.start_simulator()
    gw = None
    try:
        cfg = harness.gateway_config(tmp_path, first.url)
        path = tmp_path / "prism.toml"
        path.write_text(to_toml(cfg), encoding="utf-8")
        gw = harness.start_gateway(tmp_path, None, config_path=str(path))
        key = gw.create_key(credits_usd=10.0)["key"]
        r = gw.admin.post("/-/admin/providers/up/rotate", json={"api_key_env": NEW_ENV,
                                                                "share": 1.0})
        assert r.status_code == 201, r.text
        assert _chat(gw, key, 3) == [200] * 3
        assert _stats(first) == {NEW_KEY[-12:]: 3}
        cfg["providers"][0]["base_url"] = second.url + "/v1"
        path.write_text(to_toml(cfg), encoding="utf-8")
        assert gw.admin.post("/-/reload").status_code == 200
        assert _chat(gw, key, 3) == [200] * 3
        assert _stats(second) == {NEW_KEY[-12:]: 3}
        assert _stats(first) == {NEW_KEY[-12:]: 3}
        view = gw.admin.get("/-/admin/providers/up/rotation").json()
        assert view["state"] == "rotating"
        assert {c["slot"]: c["requests"] for c in view["credentials"]} == {"current": 0, "new": 6}
    finally:
        if gw is not None:
            gw.stop()
        first.stop()
        second.stop()
