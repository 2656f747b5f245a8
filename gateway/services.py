"""The gateway's live dependencies, built once at start-up and passed to the app.

No module-level state: everything a request needs hangs off one Services value that
server.py builds and create_app receives.
"""
from __future__ import annotations

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

    def __post_init__(self) -> None:
        from gateway.billing.admission import Admission
        from gateway.dispatch import Dispatcher
        from gateway.pipeline import Pipeline
        self.admission = Admission(self)
        self.dispatcher = Dispatcher(self)
        self.pipeline = Pipeline(self)
