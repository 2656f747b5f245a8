"""The gateway's live dependencies, built once at start-up and passed to the app.

No module-level state: everything a request needs hangs off one Services value that
server.py builds and create_app receives.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.auth import KeyCache
from gateway.billing.ledger import Ledger
from gateway.config import Config
from gateway.routing.catalog import Catalog


@dataclass
class Services:
    config: Config
    writer: Any                 # store.Writer
    ledger: Ledger
    keys: KeyCache
    catalog: Catalog
    providers: dict[str, Any]   # provider id -> Provider
    admin_token: str | None = None
    ready: bool = False
    pipeline: Any = field(default=None)
    # Called with each finished request's log record (a dict) right after it is
    # written: the live event feed and metrics hang off this. Observers must be quick
    # and must not raise; they run on the event loop.
    observers: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    def notify(self, record: dict[str, Any]) -> None:
        for observer in self.observers:
            observer(record)

    admission: Any = field(default=None)
    dispatcher: Any = field(default=None)
    # Operator state (issue 7): runtime provider flags (gateway.flags.ProviderFlags),
    # request metrics (gateway.metrics.Metrics, also an observer), the file the config
    # came from (for /-/reload), and providers replaced by a reload, which in-flight
    # requests may still be using: they are closed at shutdown, not at the swap.
    flags: Any = field(default=None)
    metrics: Any = field(default=None)
    config_path: str | None = None
    retired: list[Any] = field(default_factory=list)
    # Routing (issue 5): the async side of model selection (gateway.router.Router:
    # default modes, plan hooks) and session memory (gateway.sessions.Sessions). The
    # wall clock is injectable so session expiry can be tested without waiting.
    router: Any = field(default=None)
    sessions: Any = field(default=None)
    clock: Callable[[], float] = time.time
    # Files, vector stores and assistants (gateway.resources.Resources, issue 13).
    resources: Any = field(default=None)

    def rebuild_catalog(self) -> None:
        """Re-derive routing from the config and the operator's flags, in one swap."""
        from gateway.flags import build_catalog
        self.catalog = build_catalog(self.config, self.flags)

    def __post_init__(self) -> None:
        from gateway.billing.admission import Admission
        from gateway.dispatch import Dispatcher
        from gateway.pipeline import Pipeline
        from gateway.router import Router
        from gateway.sessions import Sessions
        self.admission = Admission(self)
        self.dispatcher = Dispatcher(self)
        self.pipeline = Pipeline(self)
        self.router = Router(self)
        self.sessions = Sessions(self)
