"""The gateway's live dependencies, built once at start-up and passed to the app.

No module-level state: everything a request needs hangs off one Services value that
server.py builds and create_app receives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def __post_init__(self) -> None:
        from gateway.pipeline import Pipeline
        self.pipeline = Pipeline(self)
