"""The dashboard's Orgs screen driven by Pilot against a real gateway: an org's
members, budget standing and own-credential providers show up, spending moves the
spent column, and a budget alert arriving on the live feed is shown on the screen."""
from __future__ import annotations

import httpx
import pytest
from textual.widgets import DataTable

import harness
from tui.app import PrismApp
from tui.common import usd
from tui.orgs import OrgsView

CHAT = {"model": "prism-mini", "max_tokens": 20,
        "messages": [{"role": "user", "content": "say: hello org"}]}


@pytest.fixture
def gw(tmp_path, monkeypatch):
    monkeypatch.setenv("PRISM_ORG_SECRETS_KEY", "tui-test-key")
    gateway = harness.start_gateway(tmp_path, None)
    yield gateway
    gateway.stop()


def test_orgs_screen_shows_budget_standing_and_alerts(gw, run, until, text):
    r = gw.admin.put("/-/orgs/acme/config", json={
        "name": "Acme", "budget_usd": 0.00002, "budget_mode": "soft",
        "models": ["prism-mini"], "credentials": {"up": "sk-acme-own-upstream"}})
    assert r.status_code == 200, r.text
    key = gw.admin.post("/-/keys", json={"name": "acme-1", "credits_usd": 1,
                                         "org_id": "acme"}).json()

    async def main():
        app = PrismApp(gw.socket_path, retry_seconds=0.2, refresh_seconds=0.5)
        app.animation_level = "none"
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.client is not None, what="connected")
            await pilot.press("6")
            table = app.query_one("#orgs-table", DataTable)
            await until(pilot, lambda: table.row_count == 2, what="orgs loaded")
            assert app.focused is table
            cells = [str(c) for c in table.get_row("acme")]
            assert cells[:4] == ["acme", "Acme", "1", usd(20)]
            assert cells[4] == usd(0) and cells[7] == "soft" and cells[8] == "prism-mini"
            assert cells[9] == "up"          # the provider id, never the credential
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                r = await client.post("/v1/chat/completions", json=CHAT,
                                      headers={"authorization": f"Bearer {key['key']}"})
            assert r.status_code == 200, r.text
            cost = int(r.headers["x-prism-cost"].replace(".", ""))
            await until(pilot, lambda: str(table.get_row("acme")[4]) == usd(cost),
                        what="spent updated")
            view = app.query_one(OrgsView)
            await until(pilot, lambda: view.alerts, what="alert received")
            assert view.alerts[0]["threshold_percent"] == 50
            await pilot.pause()
            screen = text(app)
            assert "alerts: acme 50% of $" in screen
            assert "sk-acme-own-upstream" not in screen
    run(main())
