"""Snapshots of every dashboard screen at 80x24 and 120x40.

The app is fed fixed data by a stand-in client (the Pilot tests cover the real socket),
the clock is frozen and the zone is UTC, so the screen text is the same on every run.
Each screen is compared, as text, with tests/tui/snapshots/<screen>-<size>.txt; set
PRISM_UPDATE_SNAPSHOTS=1 to rewrite them after a deliberate change, and read the diff.
Independently of the stored text, every visible widget must lie inside the terminal and
the controls that make the screen usable must be on it.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.widgets import DataTable, Footer

from gateway import errors
from gateway.control import wire
from tui.app import PrismApp
from tui.dialogs import AdjustDialog
from tui.live import LiveView

SNAPSHOTS = Path(__file__).parent / "snapshots"
SOCKET = "/run/prism/prism.sock"
NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC

PROVIDERS = [
    {"id": "sim", "kind": "simulator", "enabled": True, "images": True, "video": False,
     "overridden": {}, "breaker": "closed", "routes": [],
     "recent": {"requests": 12, "errors": 0, "window_seconds": 300}},
    {"id": "openai", "kind": "openai", "enabled": False, "images": False, "video": False,
     "overridden": {"enabled": False}, "breaker": "open",
     "routes": [{"provider": "openai", "upstream_model": "gpt-4o-mini", "state": "open",
                 "consecutive_failures": 5, "retry_in_seconds": 12.0, "failures": 5,
                 "successes": 0}],
     "recent": {"requests": 3, "errors": 2, "window_seconds": 300},
     "rotation": {"provider": "openai", "state": "rotating", "share": 0.1, "generation": 1,
                  "started_at": NOW - 600, "credentials": [
                      {"slot": "current", "source": "config", "label": "env:OPENAI_API_KEY",
                       "share": 0.9, "usable": True, "requests": 27, "errors": 0,
                       "auth_failures": 0},
                      {"slot": "new", "source": "sealed", "label": "sha256:3f9c0a1b2d",
                       "share": 0.1, "usable": True, "requests": 3, "errors": 0,
                       "auth_failures": 0}]}},
]
ACCOUNTS = [
    {"id": "acct_000000000000000000000001", "name": "development", "plan": None,
     "created_at": NOW - 86400, "balance_micros": 4_987_654, "held_micros": 12_000,
     "available_micros": 4_975_654, "active_keys": 1, "open_holds": 1},
    {"id": "acct_000000000000000000000002", "name": "acme-prod", "plan": "pro",
     "created_at": NOW - 3600, "balance_micros": 250_000_000, "held_micros": 0,
     "available_micros": 250_000_000, "active_keys": 2, "open_holds": 0},
]
KEYS = [
    {"id": "key_000000000000000000000001", "name": "development",
     "account_id": ACCOUNTS[0]["id"], "prefix": "sk-prism-Ab1", "created_at": NOW - 86400,
     "revoked": False, "revoked_at": None, "last_used_at": NOW - 60},
    {"id": "key_000000000000000000000002", "name": "acme-ci",
     "account_id": ACCOUNTS[1]["id"], "prefix": "sk-prism-Xy9", "created_at": NOW - 3600,
     "revoked": True, "revoked_at": NOW - 1800, "last_used_at": None},
]
JOBS = [
    {"id": "batch_000000000000000000000001", "kind": "batch",
     "account_id": ACCOUNTS[1]["id"], "state": "running", "phase": "in_progress",
     "attempts": 1, "progress": "120/200", "cost_micros": 61_500,
     "created_at": NOW - 600, "cancel_requested": False},
    {"id": "async_000000000000000000000002", "kind": "async",
     "account_id": ACCOUNTS[0]["id"], "state": "succeeded", "phase": None, "attempts": 1,
     "progress": "-", "cost_micros": 93, "created_at": NOW - 120, "cancel_requested": False},
    {"id": "sched_000000000000000000000003", "kind": "scheduled",
     "account_id": ACCOUNTS[0]["id"], "state": "queued", "phase": None, "attempts": 0,
     "progress": "2 run(s)", "cost_micros": 186, "created_at": NOW - 7200,
     "cancel_requested": False},
]
ORGS = [
    {"id": "org_default", "name": "Default", "accounts": 1, "models": [], "modes": [],
     "credential_providers": [], "budget_micros": None, "budget_mode": "hard",
     "spent_micros": 0, "held_micros": 0, "webhook": False},
    {"id": "acme", "name": "Acme Corp", "accounts": 1, "models": ["prism-mini"],
     "modes": ["eco"], "credential_providers": ["openai"], "budget_micros": 100_000_000,
     "budget_mode": "soft", "spent_micros": 82_500_000, "held_micros": 120_000,
     "webhook": True},
]
EVENTS = [
    {"at": NOW - 3 + i, "request_id": f"req_{i}", "key_id": KEYS[i % 2]["id"],
     "account_id": ACCOUNTS[i % 2]["id"], "route": "/v1/chat/completions",
     "dialect": "openai", "model": model, "provider": "sim", "upstream_model": "sim-mini",
     "status": status, "error_type": None, "latency_ms": latency, "tokens_in": 12 * (i + 1),
     "tokens_out": 40 * (i + 1), "cached_tokens": 0, "cost_micros": 31 * (i + 1),
     "estimated": False, "failover": i == 2, "stream": i % 2 == 0}
    for i, (model, status, latency) in enumerate(
        [("prism-mini", 200, 412.0), ("prism-max", 402, 3.2), ("prism-mini", 200, 1890.5)])
]


class FakeClient:
    """Answers like the gateway with the fixed data above."""

    def __init__(self, path: str, on_push) -> None:
        self.path = path
        self.on_push = on_push
        self.close_reason = ""
        self._closed = asyncio.Event()

    async def connect(self) -> None:
        pass

    async def call(self, kind, **fields):
        if kind is wire.Subscribe:
            for record in EVENTS:
                self.on_push(wire.Event(record=record))
            self.on_push(wire.Dropped(count=7))
            return {"subscribed": True, "buffer": 256}
        answers = {
            wire.ListProviders: {"items": PROVIDERS, "truncated": False},
            wire.ListAccounts: {"items": ACCOUNTS, "truncated": False},
            wire.ListKeys: {"items": KEYS, "truncated": False},
            wire.ListJobs: {"items": JOBS, "truncated": False},
            wire.ListWindows: {"items": [], "truncated": False,
                               "note": "quota windows arrive with plan billing"},
            wire.ListOrgs: {"items": ORGS, "period": "2026-01"},
        }
        if kind in answers:
            return answers[kind]
        raise errors.PrismError("read-only fake", code="fake")

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        self._closed.set()


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("tui.live.time", SimpleNamespace(time=lambda: NOW))
    yield
    monkeypatch.undo()
    time.tzset()


def _check_layout(app, size: tuple[int, int]) -> None:
    width, height = size
    screen = app.screen.region
    assert (screen.width, screen.height) == size
    for widget in app.screen.walk_children(with_self=False):
        if widget.display and widget.region.area:
            assert screen.contains_region(widget.region), (widget, widget.region)
    footer = app.screen.query_one(Footer)
    assert footer.region.y == height - 1 and footer.region.width == width
    status = app.query_one("#status")
    assert status.region.y == height - 2 and status.region.height == 1


def _compare(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("PRISM_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path}; run with PRISM_UPDATE_SNAPSHOTS=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its snapshot:\n{text}"


SCREENS = [("live", "1", "#requests"), ("providers", "2", "#providers-table"),
           ("accounts", "3", "#accounts-table"), ("keys", "4", "#keys-table"),
           ("jobs", "5", "#jobs-table"), ("orgs", "6", "#orgs-table")]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_screen(frozen, size, until, text):
    async def main():
        app = PrismApp(SOCKET, client_factory=FakeClient, refresh_seconds=3600)
        app.animation_level = "none"
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.query_one("#keys-table", DataTable).row_count == 2
                        and app.query_one("#accounts-table", DataTable).row_count == 2
                        and app.query_one("#jobs-table", DataTable).row_count == 3)
            # The sparklines redraw on a 1 s timer; draw them now so that whether the
            # timer has fired yet cannot change the picture.
            app.query_one(LiveView).tick()
            for name, key, table_id in SCREENS:
                await pilot.press(key)
                await pilot.pause()
                table = app.query_one(table_id, DataTable)
                assert app.focused is table
                # At least three rows of table must be visible even at 80x24.
                assert table.region.height >= 5
                _check_layout(app, size)
                screen = text(app)
                for column in table.columns.values():
                    if column.label.plain in ("time", "provider", "name"):
                        assert column.label.plain in screen
                _compare(f"{name}-{size[0]}x{size[1]}", screen)
            await pilot.press("3", "a")
            await until(pilot, lambda: isinstance(app.screen, AdjustDialog))
            await pilot.pause()
            dialog = app.screen.query_one(".dialog").region
            assert app.screen.region.contains_region(dialog)
            _compare(f"adjust-dialog-{size[0]}x{size[1]}", text(app))
    asyncio.run(main())
