"""The types one call carries through the engine: who asked (CallContext), what was
admitted (Prepared), what the client is told at the end (Outcome), and a stream that
has produced its first event (OpenStream).

A leaf: it imports nothing of the engine, so http, media and every engine module can
share these types without importing each other.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from gateway import canonical as c
from gateway.billing.meter import Meter
from gateway.config import RouteConfig
from gateway.routing.hints import RoutingHints
from gateway.routing.select import Selection

__all__ = ["CallContext", "Prepared", "Outcome", "OpenStream", "RouteCheck", "Target"]

# Given the Selection before admission, the routes that can serve this call, in order,
# or a ClientError when none can (so a dialect-native feature never fails over to an
# upstream that would drop it).
RouteCheck = Callable[[Selection], "tuple[RouteConfig, ...]"]


@dataclass
class CallContext:
    request_id: str
    route: str
    dialect: str
    account_id: str = ""
    key_id: str | None = None
    model: str | None = None
    started: float = field(default_factory=time.monotonic)
    logged: bool = False   # the request-log row is written once, by whoever ends the request
    # X-Prism-Mode / -Model-Prefer / -Session, parsed by http/common.authenticate.
    hints: RoutingHints | None = None
    # The model ids the caller's plan allows (None: any); routing never picks outside
    # it and refuses pins outside it (403).
    allowed_models: frozenset[str] | None = None
    # The caller's organization (gateway.orgs.service.OrgView), set by admission;
    # dispatch calls the org's own provider instances when it brings credentials.
    org: Any = None


@dataclass(frozen=True)
class Outcome:
    """What the response headers report about a finished call."""
    model: str
    cost_micros: int
    tokens_in: int
    tokens_out: int
    estimated: bool = False
    failover: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """What a call that names no catalog model is billed against: an MCP tool on its
    server, a remote A2A agent. The request log names it as the model and provider."""
    name: str
    provider: str

    def __post_init__(self) -> None:
        if not self.name or not self.provider:
            raise ValueError("a Target names what is called and where")


@dataclass
class Prepared:
    """One admitted call on its way through the engine. `req` is the canonical chat
    request for token-priced operations, else the operation's own request value.
    `selection` is None exactly when `target` names a call with no catalog model."""
    ctx: CallContext
    req: Any
    selection: Selection | None
    prompt_tokens: int
    op: Any = None                       # engine.operations.Operation
    units: int = 0                       # units held, for unit-priced operations
    hold_id: str = ""
    route: RouteConfig | None = None     # the route actually called (set by dispatch)
    failover: bool = False
    headers: dict[str, str] = field(default_factory=dict)   # extra response headers
    turn: Any = None    # sessions.Turn when the request belongs to a session
    target: Target | None = None
    # The stream's provider reads the network under its own read timeout (set by
    # dispatch from the provider's `timed_reads`): the relay needs no deadline per event.
    timed_reads: bool = False

    def __post_init__(self) -> None:
        if (self.selection is None) == (self.target is None):
            raise ValueError("a call is billed against a model or a target, not both")

    @property
    def entry(self):
        return self.selection.entry if self.selection is not None else None

    @property
    def billed(self) -> tuple[str, str | None, str | None]:
        """(model, provider, upstream model) as the request log names them."""
        if self.target is not None:
            return self.target.name, self.target.provider, self.target.name
        route = self.route or self.selection.routes[0]
        return self.selection.entry.model.id, route.provider, route.model

    @property
    def stream(self) -> bool:
        return bool(getattr(self.req, "stream", False))

    @property
    def max_tokens(self) -> int | None:
        return getattr(self.req, "max_tokens", None)


@dataclass
class OpenStream:
    prep: Prepared
    events: AsyncIterator[c.StreamEvent]
    first: c.StreamEvent
    meter: Meter
    outcome: Outcome | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The headers a stream sends before its body: what admission reported."""
        return self.prep.headers
