"""Providers: health, breaker state and the runtime flags, toggled with e / i / v, and
each provider's key rotation (state, traffic share and counts per credential, shown by
label: an environment variable's name or a sealed key's fingerprint); p promotes the
selected provider's new key, b rolls it back (each after a confirmation).

A toggle is sent to the gateway (which persists, audits and applies it) and the table
is re-read from the answer, so what is shown is what the gateway now does.
"""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from gateway.control import wire
from tui.common import fill_table, selected_key
from tui.dialogs import ConfirmDialog

COLUMNS = ("provider", "kind", "enabled", "images", "video", "breaker", "req 5m", "err 5m",
           "key")


_BREAKER = {"closed": "closed", "half_open": "[yellow]half_open[/yellow]",
            "open": "[b red]open[/b red]"}


def _key_cell(rotation: dict[str, Any] | None) -> str:
    """The provider's credential state in a few characters."""
    if not rotation:
        return "-"
    if rotation["state"] == "rotating":
        return f"[yellow]rot {rotation['share'] * 100:.0f}%[/yellow]"
    if rotation["credentials"] and rotation["credentials"][0]["source"] != "config":
        return "rotated"
    return "-"


def rotation_lines(providers: list[dict[str, Any]]) -> list[str]:
    """One line per provider whose credential is rotating or was rotated: each
    credential's label (never the key), traffic share and counts."""
    lines = []
    for p in providers:
        rot = p.get("rotation")
        if not rot or (rot["state"] == "steady" and rot["generation"] == 0):
            continue
        creds = ", ".join(f"{c['slot']} {c['label']} {c['share'] * 100:.0f}% "
                          f"req {c['requests']} err {c['errors']}" for c in rot["credentials"])
        lines.append(f"{p['id']}: {rot['state']} - {creds}")
    return lines


def _flag(on: bool) -> str:
    return "[green]on[/green]" if on else "[red]off[/red]"


class ProvidersView(Vertical):
    BINDINGS = [
        Binding("e", "toggle('enabled')", "Enabled"),
        Binding("i", "toggle('images')", "Images"),
        Binding("v", "toggle('video')", "Video"),
        Binding("p", "rotation('promote')", "Promote"),
        Binding("b", "rotation('rollback')", "Rollback"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.providers: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        table = DataTable(id="providers-table", cursor_type="row")
        table.add_columns(*COLUMNS)
        yield table
        yield Label("", id="breaker-note", classes="hint")
        yield Label("", id="rotation-note", classes="hint")

    async def reload(self) -> None:
        table = self.query_one("#providers-table", DataTable)
        data = await self.app.call(wire.ListProviders)
        if data is None or not table.is_attached:
            return  # refused, unreachable, or the app closed while we waited
        self.providers = {p["id"]: p for p in data["items"]}
        fill_table(table, (
            (p["id"], (p["id"], p["kind"], _flag(p["enabled"]), _flag(p["images"]),
                       _flag(p["video"]), _BREAKER.get(p["breaker"], p["breaker"]),
                       str(p["recent"]["requests"]),
                       str(p["recent"]["errors"]), _key_cell(p.get("rotation"))))
            for p in data["items"]))
        tripped = [f"{r['provider']}/{r['upstream_model']} {r['state']}"
                   + (f" (retry in {r['retry_in_seconds']:.0f}s)" if r["state"] == "open" else "")
                   for p in data["items"] for r in p.get("routes", [])
                   if r["state"] != "closed"]
        self.query_one("#breaker-note", Label).update(
            "breakers: " + ("; ".join(tripped) if tripped else "all routes closed"))
        rotations = rotation_lines(data["items"])
        self.query_one("#rotation-note", Label).update(
            "keys: " + ("; ".join(rotations) if rotations else "no rotation"))

    async def action_toggle(self, flag: str) -> None:
        pid = selected_key(self.query_one("#providers-table", DataTable))
        if pid is None or pid not in self.providers:
            self.app.notify("No provider selected", severity="warning")
            return
        value = not self.providers[pid][flag]
        result = await self.app.call(wire.SetProviderFlags, provider_id=pid, **{flag: value})
        if result is not None:
            self.app.notify(f"{pid}: {flag} {'on' if value else 'off'}")
        await self.reload()

    def action_rotation(self, step: str) -> None:
        pid = selected_key(self.query_one("#providers-table", DataTable))
        rotation = self.providers.get(pid or "", {}).get("rotation")
        if pid is None or not rotation or rotation["state"] != "rotating":
            self.app.notify("No rotating provider selected", severity="warning")
            return
        new = next((c["label"] for c in rotation["credentials"] if c["slot"] == "new"), "?")
        question = (f"Promote {new} to be {pid}'s only key?" if step == "promote" else
                    f"Roll back {pid}'s rotation and drop {new}?")

        async def answer(yes: bool | None) -> None:
            if not yes:
                return
            if await self.app.call(wire.RotationStep, provider_id=pid, step=step) is not None:
                done = "promoted" if step == "promote" else "rolled back"
                self.app.notify(f"{pid}: rotation {done}")
            await self.reload()

        self.app.push_screen(ConfirmDialog(question), answer)

    async def action_reload(self) -> None:
        await self.reload()
