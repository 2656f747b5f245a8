"""Per-generation billing for images and videos, over the money engineer's public API.

Text requests reserve a token worst case through billing.admission; a generation's
price is fixed (price x n), so this module does the same three steps with a fixed
amount: the plan's restrictions and request rate limits, then one guarded hold
(services.ledger.admit: plan windows first, then the wallet), and later exactly one
close (services.ledger.close: settle on what was delivered, void on failure), which
also writes the request-log row. Closing is shielded with its own deadline.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from gateway import errors
from gateway.billing.admission import position_headers
from gateway.billing.plans import check_request, rate_limits
from gateway.billing.windows import plan_windows
from gateway.config import PlanConfig

if TYPE_CHECKING:
    from gateway.pipeline import CallContext
    from gateway.services import Services

_CLOSE_DEADLINE = 10.0


@dataclass
class Held:
    hold_id: str
    plan: PlanConfig | None
    headers: dict[str, str] = field(default_factory=dict)


def log_record(ctx: "CallContext", *, model: str, provider: str | None,
               upstream_model: str | None, error: BaseException | None,
               cost: int, started: float | None = None) -> dict[str, Any]:
    status = 200 if error is None else (error.status if isinstance(error, errors.PrismError) else 499)
    etype = None if error is None else (error.type_name if isinstance(error, errors.PrismError)
                                        else type(error).__name__)
    return dict(request_id=ctx.request_id, key_id=ctx.key_id, account_id=ctx.account_id,
                route=ctx.route, dialect=ctx.dialect, model=model, provider=provider,
                upstream_model=upstream_model, status=status, error_type=etype,
                latency_ms=(time.monotonic() - (started or ctx.started)) * 1000.0,
                tokens_in=0, tokens_out=0, cached_tokens=0, cost_micros=cost,
                estimated=False, failover=False, stream=False)


async def _rate_check(s: "Services", ctx: "CallContext", plan: PlanConfig | None) -> None:
    items = []
    for name, limit in rate_limits(s.config, plan).items():
        if limit.unit != "requests":
            continue   # a generation has no tokens to count
        who = ("key", ctx.key_id) if name.startswith("key") else ("account", ctx.account_id)
        items.append((who, limit, 1))
    if not items:
        return
    decision = await s.admission.limiter.acquire(items)
    if not decision.allowed:
        limit = decision.refused_by
        raise errors.RateLimited(
            f"Rate limit exceeded: {limit.name} allows {limit.rate} {limit.unit} per minute",
            retry_after=decision.retry_after_s, code=limit.name.replace("-", "_"))


async def hold(s: "Services", ctx: "CallContext", model_id: str, amount_micros: int,
               *, request_id: str | None = None, check: bool = True) -> Held:
    """Reserve a generation's price; 403/429/402 when the plan or wallet refuses."""
    plan = await s.admission.plan_for(ctx.account_id)
    if check:
        if plan is not None:
            check_request(s.config, plan, model_id=model_id, mode=None, stream=False,
                          max_tokens=None, session_count=None)
        await _rate_check(s, ctx, plan)
    now = time.time()
    windows = plan_windows(plan, now) if plan is not None else ()
    with trio.CancelScope(shield=True):
        admitted = await s.ledger.admit(ctx.account_id, request_id or ctx.request_id,
                                        amount_micros, plan=plan, windows=windows, now=now,
                                        position=False)
    return Held(admitted.hold_id, plan)


async def close(s: "Services", held: Held, cost_micros: int | None, log: dict[str, Any],
                account_id: str) -> int:
    """Settle (cost) or void (None) exactly once; returns what was charged."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(_CLOSE_DEADLINE):
            windows = plan_windows(held.plan, time.time()) if held.plan is not None else ()
            closed = await s.ledger.close(held.hold_id, cost_micros, log=log,
                                          account_id=account_id, windows=windows)
            if not closed.result.already_closed:
                s.notify({**log, "cost_micros": closed.result.charged_micros})
            held.headers.update(position_headers(closed.position, closed.funded_by))
            return closed.result.charged_micros
    return 0   # the sweeper expires the hold
