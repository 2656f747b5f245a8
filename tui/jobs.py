"""Jobs: async, scheduled and batch jobs of every account (kind, owner, state,
progress, cost so far); `x` cancels the selected one after a confirmation."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable

from gateway.control import wire
from tui.common import date, fill_table, selected_key, usd

# Narrow columns first: at 80 columns the ids are what gets cut off.
COLUMNS = ("kind", "state", "progress", "cost $", "created", "id", "account")
_ENDED = ("succeeded", "failed", "cancelled", "expired")
_STYLE = {"running": "[green]running[/green]", "queued": "queued",
          "failed": "[red]failed[/red]", "cancelled": "[dim]cancelled[/dim]",
          "expired": "[dim]expired[/dim]", "succeeded": "succeeded"}


def _state(job: dict[str, Any]) -> str:
    text = _STYLE.get(job["state"], job["state"])
    if job["kind"] == "batch" and job["phase"] and job["state"] not in _ENDED:
        text += f" ({job['phase']})"
    elif job["cancel_requested"] and job["state"] not in _ENDED:
        text += " (cancelling)"
    return text


class JobsView(Vertical):
    BINDINGS = [Binding("x", "cancel", "Cancel job"), Binding("r", "reload", "Refresh")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.jobs: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        table = DataTable(id="jobs-table", cursor_type="row")
        table.add_columns(*COLUMNS)
        yield table

    async def reload(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        data = await self.app.call(wire.ListJobs)
        if data is None or not table.is_attached:
            return
        self.jobs = {j["id"]: j for j in data["items"]}
        fill_table(table, (
            (j["id"], (j["kind"], _state(j), j["progress"], usd(j["cost_micros"]),
                       date(j["created_at"]), j["id"], j["account_id"]))
            for j in data["items"]))

    async def action_reload(self) -> None:
        await self.reload()

    def action_cancel(self) -> None:
        from tui.dialogs import ConfirmDialog
        job_id = selected_key(self.query_one("#jobs-table", DataTable))
        job = self.jobs.get(job_id or "")
        if job is None:
            self.app.notify("No job selected", severity="warning")
            return
        if job["state"] in _ENDED:
            self.app.notify(f"{job_id} has already ended ({job['state']})", severity="warning")
            return

        async def cancel(yes: bool | None) -> None:
            if not yes:
                return
            if await self.app.call(wire.CancelJob, job_id=job["id"]) is not None:
                self.app.notify(f"cancelling {job['kind']} job {job['id']}")
            await self.reload()

        self.app.push_screen(ConfirmDialog(
            f"Cancel {job['kind']} job {job['id']} of {job['account_id']}?\n"
            "Work already done stays billed; nothing else is charged."), cancel)
