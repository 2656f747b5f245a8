"""Keys: every key (revoked ones greyed), `n` creates one and shows it once, `x`
revokes the selected key after a confirmation."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable

from gateway.control import wire
from tui.common import date, fill_table, selected_key
from tui.dialogs import ConfirmDialog, CreateKeyDialog, ShowKeyDialog
from tui.live import LiveView

COLUMNS = ("name", "state", "prefix", "created", "last used", "key", "account")


class KeysView(Vertical):
    BINDINGS = [Binding("n", "create", "New key"), Binding("x", "revoke", "Revoke"),
                Binding("r", "reload", "Refresh")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.keys: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        table = DataTable(id="keys-table", cursor_type="row")
        table.add_columns(*COLUMNS)
        yield table

    async def reload(self) -> None:
        table = self.query_one("#keys-table", DataTable)
        data = await self.app.call(wire.ListKeys)
        if data is None or not table.is_attached:
            return  # refused, unreachable, or the app closed while we waited
        self.keys = {k["id"]: k for k in data["items"]}
        names = {k["id"]: k["name"] for k in data["items"]}
        if any(self.app.key_names.get(k) != v for k, v in names.items()):
            self.app.key_names.update(names)
            self.app.query_one(LiveView).rebuild()  # rows that arrived before the names

        def state(k: dict[str, Any]) -> str:
            return "[dim]revoked[/dim]" if k["revoked"] else "[green]active[/green]"
        fill_table(table, (
            (k["id"], (k["name"], state(k), k["prefix"] + "...", date(k["created_at"]),
                       date(k["last_used_at"]), k["id"], k["account_id"]))
            for k in data["items"]))

    def action_create(self) -> None:
        async def create(answer: tuple[str, int] | None) -> None:
            if answer is None:
                return
            name, credits = answer
            result = await self.app.call(wire.CreateKey, name=name, credits_micros=credits)
            if result is None:
                return
            await self.reload()
            self.app.push_screen(ShowKeyDialog(result["key"], result["id"]))

        self.app.push_screen(CreateKeyDialog(), create)

    def action_revoke(self) -> None:
        key_id = selected_key(self.query_one("#keys-table", DataTable))
        key = self.keys.get(key_id or "")
        if key is None:
            self.app.notify("No key selected", severity="warning")
            return
        if key["revoked"]:
            self.app.notify(f"{key_id} is already revoked", severity="warning")
            return

        async def revoke(yes: bool | None) -> None:
            if not yes:
                return
            if await self.app.call(wire.RevokeKey, key_id=key["id"]) is not None:
                self.app.notify(f"revoked {key['name']} ({key['id']})")
            await self.reload()

        self.app.push_screen(ConfirmDialog(f"Revoke key {key['name']} ({key['id']})? "
                                           "Clients using it are refused at once."), revoke)

    async def action_reload(self) -> None:
        await self.reload()
