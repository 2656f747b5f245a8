"""`prism tui`: the operator's dashboard, a Textual app over the control socket.

The app owns the connection: a worker connects, subscribes to live events, loads every
view, and when the gateway goes away says so on the status line and keeps retrying
until it is back. Views never touch the socket directly; they `await app.call(...)`,
which answers None (after telling the operator why) when the gateway refused or could
not be reached, so a view's only failure path is "nothing changed".
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from gateway import errors
from gateway.control import wire
from tui.accounts import AccountsView
from tui.client import ControlClient
from tui.jobs import JobsView
from tui.keys import KeysView
from tui.live import LiveView
from tui.orgs import OrgsView
from tui.providers import ProvidersView

TABS = ("live", "providers", "accounts", "keys", "jobs", "orgs")


class PrismApp(App):
    CSS_PATH = "prism.tcss"
    TITLE = "Prism"
    # The tab labels already say "1 Live  2 Providers ...", so the number keys stay out
    # of the footer, leaving room at 80 columns for each view's own bindings.
    BINDINGS = [
        Binding("1", "show('live')", "Live", show=False),
        Binding("2", "show('providers')", "Providers", show=False),
        Binding("3", "show('accounts')", "Accounts", show=False),
        Binding("4", "show('keys')", "Keys", show=False),
        Binding("5", "show('jobs')", "Jobs", show=False),
        Binding("6", "show('orgs')", "Orgs", show=False),
        Binding("q", "quit", "Quit"),
    ]
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, socket_path: str, *,
                 client_factory: Callable[..., Any] = ControlClient,
                 retry_seconds: float = 1.0, refresh_seconds: float = 3.0) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.client_factory = client_factory
        self.retry_seconds = retry_seconds
        self.refresh_seconds = refresh_seconds
        self.client: Any = None
        self.connected_once = False
        self.status_text = ""
        self.key_names: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="live", id="tabs"):
            with TabPane("1 Live", id="live"):
                yield LiveView(id="live-view")
            with TabPane("2 Providers", id="providers"):
                yield ProvidersView(id="providers-view")
            with TabPane("3 Accounts", id="accounts"):
                yield AccountsView(id="accounts-view")
            with TabPane("4 Keys", id="keys"):
                yield KeysView(id="keys-view")
            with TabPane("5 Jobs", id="jobs"):
                yield JobsView(id="jobs-view")
            with TabPane("6 Orgs", id="orgs"):
                yield OrgsView(id="orgs-view")
        yield Static("", id="status")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.set_status(f"connecting to {self.socket_path}...", ok=False)
        self.run_worker(self._connection_loop(), exclusive=True, group="connection")
        self.set_interval(self.refresh_seconds, self._refresh_visible)
        self.query_one("#requests", DataTable).focus()

    # ---------------------------------------------------------------- talking

    async def call(self, kind: type[wire.Request], **fields: Any) -> Any:
        client = self.client
        if client is None:
            self.notify("Not connected to the gateway", severity="error")
            return None
        try:
            return await client.call(kind, **fields)
        except errors.PrismError as exc:
            self.notify(f"{exc.code}: {exc.message}", severity="error", timeout=8)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            self.notify(f"gateway did not answer: {exc or type(exc).__name__}",
                        severity="error")
        return None

    def _on_push(self, msg: wire.Message) -> None:
        try:
            live = self.query_one(LiveView)
        except NoMatches:
            return  # the app is closing; the connection goes with it
        if isinstance(msg, wire.Event) and msg.record.get("event") == "org_budget_alert":
            self.query_one(OrgsView).add_alert(msg.record)
        elif isinstance(msg, wire.Event):
            live.add_event(msg.record)
        elif isinstance(msg, wire.Dropped):
            live.add_dropped(msg.count)

    async def _connection_loop(self) -> None:
        while True:
            client = self.client_factory(self.socket_path, self._on_push)
            try:
                await client.connect()
            except OSError as exc:
                # The path goes last: on a narrow terminal it is what gets cut off.
                self.set_status(f"gateway unreachable ({exc.strerror or exc}), retrying: "
                                f"{self.socket_path}", ok=False)
                await asyncio.sleep(self.retry_seconds)
                continue
            self.client = client
            word = "reconnected" if self.connected_once else "connected"
            self.connected_once = True
            self.set_status(f"{word} to {self.socket_path}", ok=True)
            try:
                await client.call(wire.Subscribe)
                await self.refresh_all()
                await client.wait_closed()
            except (ConnectionError, asyncio.TimeoutError, errors.PrismError):
                pass  # the status line reports the loss below
            finally:
                # Also on app exit (this worker is cancelled): close the socket.
                self.client = None
                await client.close()
            self.set_status(f"disconnected ({client.close_reason or 'connection lost'}); "
                            "reconnecting...", ok=False)
            await asyncio.sleep(self.retry_seconds)

    async def refresh_all(self) -> None:
        # Keys first: the live table shows key names once it knows them.
        await self.query_one(KeysView).reload()
        await self.query_one(ProvidersView).reload()
        await self.query_one(AccountsView).reload()
        await self.query_one(JobsView).reload()
        await self.query_one(OrgsView).reload()

    def _refresh_visible(self) -> None:
        # Not under a dialog: the app's queries then look at the dialog's screen.
        if self.client is None or len(self.screen_stack) > 1:
            return
        view = {"providers": ProvidersView, "accounts": AccountsView,
                "keys": KeysView, "jobs": JobsView,
                "orgs": OrgsView}.get(self.query_one(TabbedContent).active)
        if view is not None:
            self.run_worker(self.query_one(view).reload(), group="refresh", exclusive=True)

    # ---------------------------------------------------------------- screen

    def set_status(self, text: str, *, ok: bool) -> None:
        self.status_text = text
        status = self.query_one("#status", Static)
        status.set_class(ok, "ok")
        status.set_class(not ok, "down")
        status.update(("● " if ok else "○ ") + text)

    def action_show(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self._focus_tab(tab)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._focus_tab(event.pane.id or "")

    def _focus_tab(self, tab: str) -> None:
        tables = self.query_one(f"TabPane#{tab}").query(DataTable)
        if tables:
            tables.first().focus()
