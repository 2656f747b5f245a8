"""Admission and settlement of one request: the money side of the pipeline.

admit() reserves the worst case before any upstream call; close() ends that hold
exactly once (settle on usage, void when nothing was produced) and writes the request's
log row in the same transaction, then tells the observers. close() is shielded with its
own deadline, so a client hanging up, a timeout or a shutdown cannot skip it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from gateway import canonical as c
from gateway import errors
from gateway.billing.pricing import cost_micros, worst_case_micros

if TYPE_CHECKING:
    from gateway.pipeline import CallContext, Prepared
    from gateway.services import Services

# Settling is one local SQLite write; if it cannot finish in this long something is
# badly wrong, and the sweeper will expire the hold instead.
_SETTLE_DEADLINE = 10.0


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


def _status(error: BaseException | None) -> int:
    if error is None:
        return 200
    return error.status if isinstance(error, errors.PrismError) else 499


def _error_type(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return error.type_name if isinstance(error, errors.PrismError) else type(error).__name__


class Admission:
    def __init__(self, services: "Services") -> None:
        self.s = services

    async def admit(self, prep: "Prepared") -> None:
        entry = prep.selection.entry
        max_out = prep.req.max_tokens or entry.model.max_output_tokens
        hold = worst_case_micros(entry.price, prep.prompt_tokens, max_out)
        # Shielded: a reserve that completes after its caller stopped waiting would leave
        # a hold nobody ends. Any pending cancel lands at the caller's next checkpoint,
        # inside the try that voids the hold.
        with trio.CancelScope(shield=True):
            prep.hold_id = await self.s.ledger.reserve(prep.ctx.account_id, prep.ctx.request_id, hold)

    def _log(self, prep: "Prepared", error: BaseException | None, usage: c.Usage | None,
             cost: int) -> dict[str, Any]:
        ctx = prep.ctx
        route = prep.route or prep.selection.routes[0]
        return dict(
            request_id=ctx.request_id, key_id=ctx.key_id, account_id=ctx.account_id,
            route=ctx.route, dialect=ctx.dialect, model=prep.selection.entry.model.id,
            provider=route.provider, upstream_model=route.model, status=_status(error),
            error_type=_error_type(error), latency_ms=(time.monotonic() - ctx.started) * 1000.0,
            tokens_in=usage.input_tokens if usage else 0,
            tokens_out=usage.output_tokens if usage else 0,
            cached_tokens=usage.cached_input_tokens if usage else 0,
            cost_micros=cost, estimated=bool(usage and usage.estimated), failover=prep.failover,
            stream=prep.req.stream)

    async def close(self, prep: "Prepared", usage: c.Usage | None,
                    error: BaseException | None) -> Outcome:
        """End the hold exactly once: settle on usage, void when nothing was produced."""
        prep.ctx.logged = True
        model = prep.selection.entry.model.id
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_SETTLE_DEADLINE):
                if usage is None:
                    log = self._log(prep, error, None, 0)
                    await self.s.ledger.void(prep.hold_id, log=log)
                    self.s.notify(log)
                    return Outcome(model, 0, 0, 0, failover=prep.failover, headers=prep.headers)
                cost = cost_micros(prep.selection.entry.price, usage)
                log = self._log(prep, error, usage, cost)
                result = await self.s.ledger.settle(prep.hold_id, cost, estimated=usage.estimated,
                                                    log=log)
                self.s.notify({**log, "cost_micros": result.charged_micros})
                return Outcome(model, result.charged_micros, usage.input_tokens,
                               usage.output_tokens, usage.estimated, prep.failover, prep.headers)
        # Deadline passed: the hold stays open for the sweeper to expire.
        return Outcome(model, 0, 0, 0, failover=prep.failover, headers=prep.headers)

    async def log_refusal(self, ctx: "CallContext", err: errors.PrismError) -> None:
        """The log row of a request refused before any hold was taken."""
        ctx.logged = True
        log = dict(
            request_id=ctx.request_id, key_id=ctx.key_id, account_id=ctx.account_id or None,
            route=ctx.route, dialect=ctx.dialect, model=ctx.model, provider=None,
            upstream_model=None, status=err.status, error_type=err.type_name,
            latency_ms=(time.monotonic() - ctx.started) * 1000.0, tokens_in=0, tokens_out=0,
            cached_tokens=0, cost_micros=0, estimated=False, failover=False, stream=False)
        with trio.CancelScope(shield=True):
            await self.s.ledger.log_only(log)
        self.s.notify(log)
