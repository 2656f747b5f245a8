"""The gateway's parts as the edges see them: what http/ and control/ are handed.

server.py builds every part with the collaborators it uses and then this value, once,
with all of them; nothing is attached to it afterwards. The engine's own parts never
read it: each got its collaborators in its constructor.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from gateway.billing.ledger import Ledger
from gateway.config import Config
from gateway.engine.admission import Admission
from gateway.engine.dispatch import Dispatcher
from gateway.engine.jobs import MediaService
from gateway.engine.live import Live, Observers
from gateway.engine.pipeline import Pipeline
from gateway.engine.select import Router
from gateway.engine.sessions import Sessions
from gateway.routing.catalog import Catalog


@dataclass(eq=False)
class Services:
    live: Live
    writer: Any                 # store.Writer
    ledger: Ledger
    keys: Any                   # runtime.keys.KeyCache
    admission: Admission
    dispatcher: Dispatcher
    router: Router
    sessions: Sessions
    media: MediaService
    pipeline: Pipeline
    flags: Any                  # runtime.flags.ProviderFlags
    metrics: Any                # runtime.metrics.Metrics
    observers: Observers        # the same one admission and jobs tell
    inference: Any = None              # inference.clients.InferenceClients
    admin_token: str | None = None
    config_path: str | None = None     # the file the config came from, for /-/reload
    clock: Callable[[], float] = time.time
    ready: bool = False                # start-up done (GET /health/ready)
    # Protocols beyond request/response (issue 15): gateway.mcp.McpService,
    # gateway.a2a.service.A2AService (their money goes through the pipeline).
    mcp: Any = None
    a2a: Any = None
    # Several processes (issue 17): gateway.shared.cluster.Cluster (heartbeats, the
    # fan-out of revocations, flag changes and reloads); None for one process.
    cluster: Any = None
    # Files, vector stores and assistants (gateway.resources.Resources).
    resources: Any = None
    # What the customer routes read and write besides the engine: stored Responses
    # (resources.responses.StoredResponses), idempotency keys
    # (engine.idempotency.Idempotency), usage and keys (resources.account.AccountRecords).
    responses: Any = None
    idempotency: Any = None
    accounts: Any = None
    # Images and video jobs on the engine (media.images.Images, media.videos.Videos).
    images: Any = None
    videos: Any = None
    # Async, scheduled and batch completions on the durable runner (gateway.jobs.Jobs).
    jobs: Any = None
    # Organizations, per-key settings and budgets (gateway.orgs.service.Orgs).
    orgs: Any = None
    # Key rotation, shadow traffic and the node view (issue 16): runtime.fleet.Fleet.
    fleet: Any = None

    @property
    def config(self) -> Config:
        return self.live.config

    @property
    def catalog(self) -> Catalog:
        return self.live.catalog

    @property
    def providers(self) -> dict[str, Any]:
        return self.live.providers

    @property
    def retired(self) -> list[Any]:
        return self.live.retired

    def notify(self, record: dict[str, Any]) -> None:
        self.observers(record)
