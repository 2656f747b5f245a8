"""The dashboard driven by Textual's Pilot against a real gateway on a temporary
socket: a request appears live, a flag toggle persists, a wallet adjustment lands in
the ledger, keys are made and revoked, and a gateway restart is survived."""
from __future__ import annotations

import asyncio

import httpx
import pytest
from textual.widgets import DataTable, Input

import harness
import store
from tui.app import PrismApp
from tui.common import usd
from tui.dialogs import AdjustDialog, ConfirmDialog, ShowKeyDialog
from tui.live import LiveView

CHAT = {"model": "prism-mini", "messages": [{"role": "user", "content": "say: hello there"}]}


@pytest.fixture
def gw(tmp_path):
    gateway = harness.start_gateway(tmp_path, None)
    yield gateway
    gateway.stop()


def _db(gw, fn, *args, **kw):
    db = gw.db()
    try:
        return fn(db, *args, **kw)
    finally:
        db.close()


def _app(gw) -> PrismApp:
    app = PrismApp(gw.socket_path, retry_seconds=0.2, refresh_seconds=0.5)
    app.animation_level = "none"
    return app


async def _connected(app, pilot, until):
    await until(pilot, lambda: app.client is not None, what="connected")
    await until(pilot, lambda: app.query_one("#keys-table", DataTable).row_count
                or app.query_one("#providers-table", DataTable).row_count, what="loaded")


def _row(table: DataTable, key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


def test_a_request_appears_in_the_live_table(gw, run, until):
    key = gw.create_key(name="alice")

    async def main():
        app = _app(gw)
        async with app.run_test(size=(120, 40)) as pilot:
            await _connected(app, pilot, until)
            await until(pilot, lambda: key["id"] in app.key_names, what="key names")
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                r = await client.post("/v1/chat/completions", json=CHAT,
                                      headers={"authorization": f"Bearer {key['key']}"})
            assert r.status_code == 200
            live = app.query_one(LiveView)
            table = app.query_one("#requests", DataTable)
            await until(pilot, lambda: table.row_count == 1, what="row")
            record = live.records[-1]
            assert record["request_id"] == r.headers["x-request-id"]
            cells = [str(c) for c in table.get_row_at(0)]
            assert cells[1:4] == ["alice", "prism-mini", "200"]
            assert cells[7:10] == ["/v1/chat/completions", "openai", ""]
            assert cells[5] == f"{r.headers['x-prism-tokens-in']}/{r.headers['x-prism-tokens-out']}"
            assert cells[6] == usd(int(r.headers["x-prism-cost"].replace(".", "")))

            # The filter hides what does not match and brings it back.
            app.query_one("#filter", Input).value = "no-such-thing"
            await until(pilot, lambda: table.row_count == 0, what="filtered out")
            app.query_one("#filter", Input).value = "alice 200"
            await until(pilot, lambda: table.row_count == 1, what="filtered in")
    run(main())


def test_toggling_images_persists_and_shows_in_health(gw, run, until):
    async def main():
        app = _app(gw)
        async with app.run_test(size=(80, 24)) as pilot:
            await _connected(app, pilot, until)
            await pilot.press("2")
            table = app.query_one("#providers-table", DataTable)
            await until(pilot, lambda: table.row_count == 1, what="providers")
            assert app.focused is table
            await pilot.press("i")
            await until(pilot, lambda: "on" in _row(table, "up")[3], what="images on")
        await asyncio.sleep(0)
    run(main())
    row = _db(gw, lambda db: store.ProviderFlag.get_by_id("up"))
    assert (row.enabled, row.images, row.video) == (None, True, None)
    health = gw.admin.get("/-/health/providers").json()["providers"][0]
    assert health["images"] is True and health["enabled"] is True
    audit = _db(gw, store.audit_log, action="provider.flags")
    assert audit[0]["actor"].startswith("socket:uid=")


def test_adjusting_a_wallet_through_the_dialog_posts_a_ledger_row(gw, run, until):
    key = gw.create_key(credits_usd=1.0, name="bob")
    acct = key["account_id"]

    async def main():
        app = _app(gw)
        async with app.run_test(size=(80, 24)) as pilot:
            await _connected(app, pilot, until)
            await pilot.press("3")
            table = app.query_one("#accounts-table", DataTable)
            await until(pilot, lambda: acct in table.rows, what="account row")
            table.move_cursor(row=table.get_row_index(acct))
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AdjustDialog), what="dialog")
            await pilot.press(*"-0.25", "enter")
            await pilot.press(*"refund for outage", "enter")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
            assert "Debit $0.25 from bob" in str(app.screen.question)
            await pilot.press("y")
            await until(pilot, lambda: _row(table, acct)[1] == "0.75", what="new balance")

            # A correction below zero is refused and nothing is posted.
            await pilot.press("a")
            await pilot.press(*"-5", "enter", *"too much", "enter", "y")
            await until(pilot, lambda: not isinstance(app.screen, (AdjustDialog, ConfirmDialog)),
                        what="dialog closed")
            await pilot.pause(0.3)
    run(main())
    rows = _db(gw, store.ledger_rows, acct)
    assert [(r.kind, r.amount_micros, r.reason) for r in rows] == [
        ("topup", 1_000_000, "opening credits"), ("adjust", -250_000, "refund for outage")]


def test_creating_and_revoking_a_key(gw, run, until):
    shown: dict[str, str] = {}

    async def main():
        app = _app(gw)
        async with app.run_test(size=(120, 40)) as pilot:
            await _connected(app, pilot, until)
            await pilot.press("4")
            await pilot.press("n")
            await pilot.press(*"ci-bot", "enter", *"2", "enter")
            await until(pilot, lambda: isinstance(app.screen, ShowKeyDialog), what="key shown")
            shown["key"] = app.screen.query_one("#plaintext", Input).value
            shown["id"] = app.screen.key_id
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                r = await client.post("/v1/chat/completions", json=CHAT,
                                      headers={"authorization": f"Bearer {shown['key']}"})
                assert r.status_code == 200
                await pilot.press("enter")
                table = app.query_one("#keys-table", DataTable)
                await until(pilot, lambda: shown["id"] in table.rows, what="key row")
                table.move_cursor(row=table.get_row_index(shown["id"]))
                await pilot.press("x")
                await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
                await pilot.press("y")
                await until(pilot, lambda: "revoked" in _row(table, shown["id"])[1],
                            what="revoked")
                r = await client.post("/v1/chat/completions", json=CHAT,
                                      headers={"authorization": f"Bearer {shown['key']}"})
                assert r.status_code == 401
    run(main())
    assert shown["key"].startswith("sk-prism-")
    key = _db(gw, store.get_key, shown["id"])
    assert key.name == "ci-bot" and key.revoked_at is not None
    opening = _db(gw, store.ledger_rows, key.account_id)[0]
    assert (opening.kind, opening.amount_micros) == ("topup", 2_000_000)


def test_reconnects_when_the_gateway_restarts(tmp_path, run, until):
    first = harness.start_gateway(tmp_path, None)
    state: dict = {}

    async def main():
        app = _app(first)
        async with app.run_test(size=(80, 24)) as pilot:
            await _connected(app, pilot, until)
            assert app.status_text.startswith("connected")
            await asyncio.to_thread(first.stop)
            await until(pilot, lambda: app.client is None, what="noticed the loss")
            await until(pilot, lambda: "reconnecting" in app.status_text
                        or "unreachable" in app.status_text, what="says so")
            state["down"] = app.status_text
            second = await asyncio.to_thread(harness.start_gateway, tmp_path, None)
            state["second"] = second
            await until(pilot, lambda: app.status_text.startswith("reconnected"),
                        what="reconnected")
            key = second.create_key(name="after")
            async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
                await client.post("/v1/chat/completions", json=CHAT,
                                  headers={"authorization": f"Bearer {key['key']}"})
            await until(pilot, lambda: app.query_one("#requests", DataTable).row_count == 1,
                        what="events after reconnect")
    try:
        run(main())
    finally:
        if "second" in state:
            state["second"].stop()
    assert "reconnecting" in state["down"] or "unreachable" in state["down"]
