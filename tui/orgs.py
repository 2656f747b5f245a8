"""Orgs: each organization's accounts, restrictions, own credentials (provider ids
only) and this month's budget (spent, held, limit, percent used); budget alerts
arriving on the live feed are shown under the table."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from gateway.control import wire
from tui.common import fill_table, usd

COLUMNS = ("org", "name", "accounts", "budget", "spent", "held", "used", "mode", "models",
           "own keys")


def _used(o: dict[str, Any]) -> str:
    limit = o.get("budget_micros")
    if not limit:
        return "-"
    return f"{100 * o['spent_micros'] // limit}%"


class OrgsView(Vertical):
    BINDINGS = [Binding("r", "reload", "Refresh")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.orgs: dict[str, dict[str, Any]] = {}
        self.alerts: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        table = DataTable(id="orgs-table", cursor_type="row")
        table.add_columns(*COLUMNS)
        yield table
        yield Label("", id="org-alerts", classes="hint")

    async def reload(self) -> None:
        table = self.query_one("#orgs-table", DataTable)
        data = await self.app.call(wire.ListOrgs)
        if data is None or not table.is_attached:
            return
        self.orgs = {o["id"]: o for o in data["items"]}
        fill_table(table, (
            (o["id"], (o["id"], o["name"], str(o["accounts"]),
                       "-" if o["budget_micros"] is None else usd(o["budget_micros"]),
                       usd(o["spent_micros"]), usd(o["held_micros"]), _used(o),
                       o["budget_mode"] if o["budget_micros"] is not None else "-",
                       ",".join(o["models"]) or "any",
                       ",".join(o["credential_providers"]) or "-"))
            for o in data["items"]))

    def add_alert(self, record: dict[str, Any]) -> None:
        self.alerts = (self.alerts + [record])[-3:]
        self.query_one("#org-alerts", Label).update("alerts: " + "  ".join(
            f"{a['org_id']} {a['threshold_percent']}% of ${usd(a['limit_micros'])}"
            for a in self.alerts))

    async def action_reload(self) -> None:
        await self.reload()
