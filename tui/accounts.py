"""Accounts: wallet balance, held and available money, open holds, quota windows;
`a` opens the adjust dialog (amount, reason, confirm) for the selected account."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from gateway.control import wire
from tui.common import fill_table, selected_key, usd
from tui.dialogs import AdjustDialog

COLUMNS = ("name", "balance", "held", "available", "keys", "holds", "plan", "account")


class AccountsView(Vertical):
    BINDINGS = [Binding("a", "adjust", "Adjust wallet"), Binding("r", "reload", "Refresh")]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.accounts: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        table = DataTable(id="accounts-table", cursor_type="row")
        table.add_columns(*COLUMNS)
        yield table
        yield Label("", id="windows", classes="hint")

    async def reload(self) -> None:
        table = self.query_one("#accounts-table", DataTable)
        data = await self.app.call(wire.ListAccounts)
        windows = await self.app.call(wire.ListWindows)
        if data is None or not table.is_attached:
            return  # refused, unreachable, or the app closed while we waited
        self.accounts = {a["id"]: a for a in data["items"]}
        fill_table(table, (
            (a["id"], (a["name"], usd(a["balance_micros"]), usd(a["held_micros"]),
                       usd(a["available_micros"]), str(a["active_keys"]),
                       str(a["open_holds"]), a["plan"] or "-", a["id"]))
            for a in data["items"]))
        label = self.query_one("#windows", Label)
        if windows is None:
            label.update("")
        elif windows["items"]:
            label.update("windows: " + "  ".join(
                f"{w.get('name', '?')} {usd(w.get('used_micros'))}/{usd(w.get('limit_micros'))}"
                for w in windows["items"]))
        else:
            label.update(f"windows: none - {windows.get('note', '')}")

    def action_adjust(self) -> None:
        account_id = selected_key(self.query_one("#accounts-table", DataTable))
        account = self.accounts.get(account_id or "")
        if account is None:
            self.app.notify("No account selected", severity="warning")
            return

        async def adjust(answer: tuple[int, str] | None) -> None:
            if answer is None:
                return
            micros, reason = answer
            result = await self.app.call(wire.AdjustWallet, account_id=account["id"],
                                         amount_micros=micros, reason=reason)
            if result is not None:
                self.app.notify(f"{account['name']}: balance now "
                                f"${usd(result['balance_micros'])}")
            await self.reload()

        self.app.push_screen(AdjustDialog(account["id"], account["name"],
                                          account["available_micros"]), adjust)

    async def action_reload(self) -> None:
        await self.reload()
