"""The Providers screen shows a key rotation as the gateway runs it: Pilot against a real
gateway (over its control socket) in front of the HTTP simulator."""
from __future__ import annotations

import httpx
import pytest
from textual.widgets import DataTable, Label

import harness
from tui.app import PrismApp
from tui.dialogs import ConfirmDialog

NEW_ENV = "PRISM_TEST_ROTATION_KEY"


@pytest.fixture
def sim():
    s = harness.start_simulator()
    yield s
    s.stop()


@pytest.fixture
def gw(sim, tmp_path, monkeypatch):
    monkeypatch.setenv(NEW_ENV, "sk-upstream-rotated-tui")
    gateway = harness.start_gateway(tmp_path, sim.url)
    yield gateway
    gateway.stop()


def test_providers_screen_shows_rotation_and_its_promotion(gw, run, until):
    key = gw.create_key(credits_usd=10.0)["key"]
    r = gw.admin.post("/-/admin/providers/up/rotate",
                      json={"api_key_env": NEW_ENV, "share": 0.5})
    assert r.status_code == 201, r.text
    for i in range(6):
        r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                       headers={"authorization": f"Bearer {key}"},
                       json={"model": "prism-mini",
                             "messages": [{"role": "user", "content": f"hi {i}"}]})
        assert r.status_code == 200

    def cell(table: DataTable) -> str:
        return str(table.get_row("up")[-1]) if table.row_count else ""

    async def main():
        app = PrismApp(gw.socket_path, retry_seconds=0.2, refresh_seconds=0.5)
        app.animation_level = "none"
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.client is not None, what="connected")
            await pilot.press("2")
            table = app.query_one("#providers-table", DataTable)
            note = app.query_one("#rotation-note", Label)
            await until(pilot, lambda: "rot 50%" in cell(table), what="rotating cell")
            text = str(note.render())
            assert f"new env:{NEW_ENV} 50%" in text
            assert "current env:PRISM_TEST_UPSTREAM_KEY" in text
            assert "req" in text and "sk-upstream" not in text
            # Promote from the dashboard: p, then confirm.
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
            await pilot.press("y")
            await until(pilot, lambda: cell(table) == "rotated", what="promoted")
            assert f"up: steady - current env:{NEW_ENV} 100%" in str(note.render())
    run(main())
    view = gw.admin.get("/-/admin/providers/up/rotation").json()
    assert view["state"] == "steady"
    step = view["history"][0]
    assert step["action"] == "provider.rotation.promote"
    assert step["actor"].startswith("socket:uid=")

    # Roll back from the dashboard: a second rotation, b, confirm.
    r = gw.admin.post("/-/admin/providers/up/rotate",
                      json={"api_key_env": "PRISM_TEST_UPSTREAM_KEY", "share": 0.2})
    assert r.status_code == 201, r.text

    async def rollback():
        app = PrismApp(gw.socket_path, retry_seconds=0.2, refresh_seconds=0.5)
        app.animation_level = "none"
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.client is not None, what="connected")
            await pilot.press("2")
            table = app.query_one("#providers-table", DataTable)
            await until(pilot, lambda: "rot 20%" in cell(table), what="rotating again")
            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
            await pilot.press("y")
            await until(pilot, lambda: cell(table) == "rotated", what="rolled back")
    run(rollback())
    view = gw.admin.get("/-/admin/providers/up/rotation").json()
    assert view["state"] == "steady"
    assert view["history"][0]["action"] == "provider.rotation.rollback"
    assert [c["label"] for c in view["credentials"]] == [f"env:{NEW_ENV}"]
