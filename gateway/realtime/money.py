"""A realtime session's responses as engine operations: each `response.create` is one
call through the engine's admission (the plan, RPM and TPM limits, plan windows, the
wallet hold, in one guarded write) and each ends through the engine's close (settle
or void, the request-log row, the dashboard event), exactly once.

The session (gateway.realtime.session) prices a response itself, per token kind
(gateway.realtime.meter), so the operation is priced in micro-USD: the hold is the
response's worst case and the settlement what its usage cost.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from gateway import canonical as c
from gateway.config import RouteConfig
from gateway.engine.call import CallContext, Prepared
from gateway.engine.operations import Operation, Pricing
from gateway.realtime.meter import Tokens

ROUTE = "/v1/realtime"


@dataclass(frozen=True)
class ResponseRequest:
    """One response.create as admission sees it."""
    hold_micros: int        # the worst case: input so far and the output cap
    input_tokens: int
    max_tokens: int         # the response's output cap (a plan's max_tokens applies)

    def __post_init__(self) -> None:
        if min(self.hold_micros, self.input_tokens, self.max_tokens) < 0:
            raise ValueError("a response's hold and token counts are never negative")


REALTIME: Operation[ResponseRequest, Any] = Operation(
    kind="realtime", capability="realtime", pricing=Pricing.micros(),
    hold_units=lambda req: req.hold_micros,
    rate_tokens=lambda req: req.input_tokens + req.max_tokens,
    noun="realtime session")


class NothingBilled(Exception):
    """Why a response was closed with no bill: the upstream refused it, or nothing of
    it was generated before the client left (logged as status 499)."""


@dataclass(frozen=True)
class SessionMoney:
    """The engine, as one session's responses use it."""
    pipeline: Any                   # gateway.engine.pipeline.Pipeline
    key_id: str
    account_id: str
    model: str                      # the public model id
    route: RouteConfig              # the one upstream route the session is bridged to
    allowed_models: frozenset[str] | None = None

    def _ctx(self) -> CallContext:
        return CallContext(request_id="req_" + secrets.token_hex(12), route=ROUTE,
                           dialect="openai", account_id=self.account_id, key_id=self.key_id,
                           model=self.model, allowed_models=self.allowed_models)

    async def hold(self, req: ResponseRequest) -> Prepared:
        """Admit one response; a ClientError (402, 403, 429) refuses it, logged."""
        return await self.pipeline.hold(self._ctx(), REALTIME, req, model=self.model,
                                        routes=lambda selection: (self.route,))

    async def close(self, prep: Prepared, tokens: Tokens | None, cost: int | None, *,
                    estimated: bool, error: BaseException | None) -> None:
        """Settle for ``cost`` (void when None), logging ``tokens``."""
        usage = None if tokens is None else c.Usage(
            input_tokens=tokens.input, output_tokens=tokens.output,
            cached_input_tokens=tokens.cached_in, estimated=estimated)
        await self.pipeline.close(prep, usage, error, units=cost)
