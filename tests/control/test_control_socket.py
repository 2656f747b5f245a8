"""The control socket against a real gateway: file handling, every request, audit,
error frames that close one connection only, and flags that act at once."""
from __future__ import annotations

import os
import socket
import stat
import struct

import httpx
import pytest

import harness
import store
from gateway.control import wire

CHAT = {"model": "prism-mini", "messages": [{"role": "user", "content": "say: hi"}]}


def _chat(gw, key: str, model: str = "prism-mini") -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": model},
                      headers={"authorization": f"Bearer {key}"}, timeout=30)


def _db(gw, fn, *args, **kw):
    db = gw.db()
    try:
        return fn(db, *args, **kw)
    finally:
        db.close()


def test_socket_file_is_private_and_removed_at_stop(tmp_path):
    gw = harness.start_gateway(tmp_path, None)
    path = gw.socket_path
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    finally:
        gw.stop()
    assert not os.path.exists(path)


def test_stale_socket_is_replaced_and_a_live_one_is_not(tmp_path, connect):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "prism.sock"))
    stale.close()  # the file stays, nobody listens: what a crash leaves behind
    gw = harness.start_gateway(tmp_path, None)
    try:
        assert connect(gw.socket_path).ok(wire.ListProviders)["items"][0]["id"] == "up"
        # A second gateway pointed at the same socket must not steal it.
        other = tmp_path / "other"
        other.mkdir()
        with pytest.raises(RuntimeError, match="another gateway"):
            harness.start_gateway(other, None, control={"socket": gw.socket_path})
        assert connect(gw.socket_path).ok(wire.ListProviders)
    finally:
        gw.stop()


def test_a_file_that_is_not_a_socket_is_never_deleted(tmp_path):
    (tmp_path / "prism.sock").write_text("precious")
    with pytest.raises(RuntimeError, match="not a socket"):
        harness.start_gateway(tmp_path, None)
    assert (tmp_path / "prism.sock").read_text() == "precious"


def test_lists(control_gateway, connect):
    gw = control_gateway
    key = gw.create_key(credits_usd=3.0, name="lister")
    c = connect(gw.socket_path)
    providers = c.ok(wire.ListProviders)["items"]
    assert [p["id"] for p in providers] == ["up"]
    assert providers[0]["breaker"] == "closed"
    assert [r["upstream_model"] for r in providers[0]["routes"]] == ["sim-mini", "sim-big",
                                                                     "sim-free", "x"]
    models = {m["id"]: m for m in c.ok(wire.ListModels)["items"]}
    assert models["prism-mini"]["visible"] and not models["prism-off"]["visible"]
    accounts = {a["id"]: a for a in c.ok(wire.ListAccounts)["items"]}
    assert accounts[key["account_id"]]["balance_micros"] == 3_000_000
    keys = c.ok(wire.ListKeys, account_id=key["account_id"])["items"]
    assert [k["id"] for k in keys] == [key["id"]] and "key" not in keys[0]
    assert c.ok(wire.ListHolds)["items"] == []
    windows = c.ok(wire.ListWindows)
    assert windows["items"] == [] and windows["note"]


def test_adjust_wallet_writes_a_ledger_row_and_an_audit_row(control_gateway, connect):
    gw = control_gateway
    key = gw.create_key(credits_usd=2.0)
    acct = key["account_id"]
    c = connect(gw.socket_path)
    data = c.ok(wire.AdjustWallet, account_id=acct, amount_micros=1_250_000, reason="goodwill")
    assert data["balance_micros"] == 3_250_000
    data = c.ok(wire.AdjustWallet, account_id=acct, amount_micros=-250_000, reason="typo fix")
    assert data["balance_micros"] == 3_000_000
    refused = c.call(wire.AdjustWallet, account_id=acct, amount_micros=-3_000_001, reason="no")
    assert isinstance(refused, wire.Error) and refused.code == "would_go_negative"
    missing = c.call(wire.AdjustWallet, account_id="acct_nope", amount_micros=1, reason="x")
    assert isinstance(missing, wire.Error) and missing.code == "not_found"

    rows = _db(gw, store.ledger_rows, acct)
    assert [(r.kind, r.amount_micros, r.reason) for r in rows[1:]] == [
        ("topup", 1_250_000, "goodwill"), ("adjust", -250_000, "typo fix")]
    audit = [a for a in _db(gw, store.audit_log, action="wallet.adjust")
             if a["detail"]["account_id"] == acct]
    assert [a["detail"]["amount_micros"] for a in audit] == [-250_000, 1_250_000]
    assert all(a["actor"].startswith("socket:uid=") for a in audit)
    assert _db(gw, store.check_invariants) == []


def test_create_and_revoke_key(control_gateway, connect):
    gw = control_gateway
    c = connect(gw.socket_path)
    made = c.ok(wire.CreateKey, name="from-socket", credits_micros=1_000_000)
    assert made["key"].startswith("sk-prism-")
    assert _chat(gw, made["key"]).status_code == 200
    second = c.ok(wire.CreateKey, name="second", account_id=made["account_id"])
    assert second["account_id"] == made["account_id"]
    assert c.ok(wire.RevokeKey, key_id=made["id"])["changed"] is True
    assert _chat(gw, made["key"]).status_code == 401
    assert c.ok(wire.RevokeKey, key_id=made["id"])["changed"] is False
    unknown = c.call(wire.RevokeKey, key_id="key_nope")
    assert isinstance(unknown, wire.Error) and unknown.code == "not_found"
    audit = _db(gw, store.audit_log, limit=10)
    actions = [(a["action"], a["detail"].get("key_id")) for a in audit]
    assert ("key.create", made["id"]) in actions and ("key.revoke", made["id"]) in actions
    assert all(made["key"] not in str(a) for a in audit)  # the secret is never logged


def test_disabling_a_provider_hides_its_models_at_once_and_persists(tmp_path, connect):
    gw = harness.start_gateway(tmp_path, None)
    try:
        key = gw.create_key()
        c = connect(gw.socket_path)
        flags = c.ok(wire.SetProviderFlags, provider_id="up", enabled=False)
        assert flags["enabled"] is False and flags["overridden"] == {"enabled": False}
        r = _chat(gw, key["key"])
        assert r.status_code == 404 and r.json()["error"]["type"] == "model_not_found"
        listed = httpx.get(gw.url + "/v1/models", headers={"authorization": f"Bearer {key['key']}"})
        assert listed.json()["data"] == []
        unknown = c.call(wire.SetProviderFlags, provider_id="nope", images=True)
        assert isinstance(unknown, wire.Error) and unknown.code == "not_found"
        c.ok(wire.SetProviderFlags, provider_id="up", video=True)
    finally:
        gw.stop()
    # Overrides outlive the process.
    gw = harness.start_gateway(tmp_path, None)
    try:
        assert _chat(gw, key["key"]).status_code == 404
        health = gw.admin.get("/-/health/providers").json()["providers"][0]
        assert (health["enabled"], health["video"], health["images"]) == (False, True, False)
        connect(gw.socket_path).ok(wire.SetProviderFlags, provider_id="up", enabled=True)
        assert _chat(gw, key["key"]).status_code == 200
        audit = _db(gw, store.audit_log, action="provider.flags")
        assert [a["detail"]["set"] for a in reversed(audit)] == [
            {"enabled": False}, {"video": True}, {"enabled": True}]
    finally:
        gw.stop()


def _drain(sock: socket.socket) -> tuple[list[wire.Message], bool]:
    """Everything the gateway sends until it closes; (messages, closed cleanly)."""
    decoder, out = wire.FrameDecoder(), []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return out, True
        if not data:
            decoder.close()
            return out, True
        out += decoder.feed(data)


@pytest.mark.parametrize("payload, code", [
    (b"GET / HTTP/1.1\r\n\r\n", "frame_too_large"),
    (struct.pack(">I", 2 * wire.MAX_FRAME), "frame_too_large"),
    (struct.pack(">I", 4) + b"\xff\xfe\xfd\xfc", "bad_frame"),
    (wire.encode(wire.Result(id=1, data=None)), "unexpected_type"),
    (struct.pack(">I", 18) + b'\xa3av\x01dtypedhackbid\x01', "unknown_type"),
])
def test_a_bad_frame_closes_only_its_connection(control_gateway, connect, payload, code):
    gw = control_gateway
    key = gw.create_key()
    watcher = connect(gw.socket_path)
    watcher.ok(wire.Subscribe)
    bad = socket.socket(socket.AF_UNIX)
    bad.settimeout(10)
    bad.connect(gw.socket_path)
    bad.sendall(payload)
    messages, closed = _drain(bad)
    bad.close()
    assert closed and len(messages) == 1
    assert isinstance(messages[0], wire.Error) and messages[0].id is None
    assert messages[0].code == code
    # Everyone else carries on: the watcher still gets events, the API still answers.
    assert _chat(gw, key["key"]).status_code == 200
    event = watcher.next(wire.Event)
    assert event.record["key_id"] == key["id"]
    assert watcher.ok(wire.ListProviders)


def test_an_error_reply_keeps_the_connection(control_gateway, connect):
    c = connect(control_gateway.socket_path)
    assert isinstance(c.call(wire.RevokeKey, key_id="key_missing"), wire.Error)
    assert c.ok(wire.ListModels)["items"]


def test_unsubscribe_stops_events(control_gateway, connect):
    gw = control_gateway
    key = gw.create_key()
    c = connect(gw.socket_path)
    assert c.ok(wire.Subscribe) == {"subscribed": True, "buffer": 256}
    assert c.ok(wire.Subscribe)["subscribed"]  # idempotent
    _chat(gw, key["key"])
    assert c.next(wire.Event).record["status"] == 200
    assert c.ok(wire.Unsubscribe) == {"subscribed": False}
    _chat(gw, key["key"])
    c.ok(wire.ListProviders)  # a round trip after the request: any event would be here
    assert not [m for m in c.inbox if isinstance(m, wire.Event)]


def test_clients_that_vanish_mid_conversation_harm_nobody(control_gateway, connect):
    gw = control_gateway
    key = gw.create_key()
    for _ in range(5):
        # A subscriber that goes away with events unread (the kernel resets the
        # connection while the gateway is writing to it) ...
        gone = socket.socket(socket.AF_UNIX)
        gone.connect(gw.socket_path)
        gone.sendall(wire.encode(wire.Subscribe(id=1)))
        for _ in range(3):
            assert _chat(gw, key["key"]).status_code == 200
        gone.close()
        # ... and one that asks for something big and leaves before the answer.
        rude = socket.socket(socket.AF_UNIX)
        rude.connect(gw.socket_path)
        rude.sendall(b"".join(wire.encode(wire.ListModels(id=i)) for i in range(50)))
        rude.close()
        assert _chat(gw, key["key"]).status_code == 200
    assert connect(gw.socket_path).ok(wire.ListProviders)


def test_connections_are_capped(control_gateway, connect, wait_for):
    from gateway.control.server import MAX_CONNECTIONS
    held = [connect(control_gateway.socket_path) for _ in range(MAX_CONNECTIONS)]
    for c in held:  # a round trip each, so every one is being served
        c.ok(wire.ListWindows)
    extra = socket.socket(socket.AF_UNIX)
    extra.settimeout(10)
    extra.connect(control_gateway.socket_path)
    messages, closed = _drain(extra)
    extra.close()
    assert closed and [(m.id, m.code) for m in messages] == [(None, "too_many_connections")]
    for c in held:
        c.close()

    def served_again():
        try:
            return connect(control_gateway.socket_path).call(wire.ListWindows)
        except (OSError, EOFError):
            return None  # the gateway has not yet seen every close
    assert isinstance(wait_for(served_again), wire.Result)
