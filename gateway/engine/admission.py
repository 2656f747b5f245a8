"""Admission and settlement of one request: the money side of the pipeline.

admit() runs, in this order, before any upstream call:
    the account's plan      -> 403 plan_restricted / free_tier_limit (billing.plans)
    rate limits (GCRA)      -> 429 rate_limited, per key and per account (billing.ratelimit)
    the hold                -> plan windows first, then the wallet if the plan falls
                               through (or there is no plan), in one guarded write
                               (store.quota.admit) -> 429 quota_exceeded / 402
close() ends that hold exactly once (settle on usage, void when nothing was produced)
and writes the request's log row in the same transaction, then tells the observers.
It is shielded with its own deadline, so a client hanging up, a timeout or a shutdown
cannot skip it, and a second close of the same request changes nothing.

Both leave "where the caller stands" in prep.headers (which the pipeline hands on as
Outcome.headers): RateLimit-*, X-Prism-Wallet-Remaining, X-Prism-Window-Remaining.
Streams send their headers before close(), so the figures they carry are the ones
after admission; `pending_headers` lets the HTTP layer pick them up.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import trio

import store
from gateway import canonical as c
from gateway import errors
from gateway.billing.plans import (AccountPlans, _burst, allowed_models, check_request,
                                   find_plan, rate_limits, session_messages)
from gateway.billing.pricing import cost_micros, markup_micros, worst_case_micros
from gateway.billing.ratelimit import GCRA, Decision, Limit
from gateway.shared.limiter import LocalLimiter
from gateway.billing.windows import plan_windows
from gateway.config import PlanConfig

from gateway.engine.call import Outcome
from gateway.engine.standing import (error_type_of, operator_detail, position_headers,
                                     rate_headers, status_of)

if TYPE_CHECKING:
    from gateway.billing.ledger import Ledger
    from gateway.engine.call import CallContext, Prepared
    from gateway.engine.live import Live


# Settling is one local SQLite write; if it cannot finish in this long something is
# badly wrong, and the sweeper will expire the hold instead.
_SETTLE_DEADLINE = 10.0


@dataclass
class _Live:
    """An admitted request not yet closed."""
    plan: PlanConfig | None
    tokens: list[tuple[Any, Limit, int]]   # token-limit charges to correct at close
    headers: dict[str, str]
    markup_bp: int = 0                     # the mode's markup, fixed at admission


class Admission:
    def __init__(self, live: "Live", writer: Any, ledger: "Ledger",
                 notify: Callable[[dict[str, Any]], None], *,
                 clock: Callable[[], float] = time.time,
                 monotonic_ns: Callable[[], int] = time.monotonic_ns,
                 limiter: Any = None, orgs: Any = None) -> None:
        self.live = live
        self.writer = writer
        self.ledger = ledger
        self.notify = notify
        self.clock = clock
        # Injected when several processes share limits (gateway.shared.limiter).
        self.limiter = limiter or LocalLimiter(GCRA(monotonic_ns))
        self.plans = AccountPlans(self._lookup_plan, ttl=live.config.store.key_cache_ttl)
        # Organizations and per-key settings (gateway.orgs.service.Orgs), or None.
        self.orgs = orgs
        self._live: dict[str, _Live] = {}

    async def _lookup_plan(self, account_id: str) -> str | None:
        account = await self.writer.call(store.get_account, account_id)
        return None if account is None else account.plan

    async def plan_for(self, account_id: str) -> PlanConfig | None:
        return find_plan(self.live.config, await self.plans.plan_id(account_id))

    async def allowed_models(self, account_id: str, key_id: str | None = None
                             ) -> frozenset[str] | None:
        """The model ids the account's plan allows (None: any), for routing's
        CallContext.allowed_models, so smart routing never picks outside the plan;
        narrowed by the org's and the key's lists (and an expired key refused)."""
        plan = await self.plan_for(account_id)
        models = (None if plan is None or not plan.models
                  else allowed_models(self.live.config, plan))
        if self.orgs is None:
            return models
        return await self.orgs.allowed(account_id, key_id, models)

    async def position(self, account_id: str) -> tuple[PlanConfig | None, "store.Position",
                                                       float]:
        """(plan, position, as-of time) for the customer routes and the dashboard."""
        plan = await self.plan_for(account_id)
        now = self.clock()
        windows = plan_windows(plan, now) if plan is not None else ()
        pos = await self.writer.call(store.account_position, account_id, windows)
        return plan, pos, now

    def pending_headers(self, request_id: str) -> dict[str, str]:
        """The headers of an admitted request that has not closed yet (a stream whose
        response is about to start)."""
        live = self._live.get(request_id)
        return dict(live.headers) if live is not None else {}

    def _limits(self, plan: PlanConfig | None, org: Any, ks: Any) -> dict[str, Limit]:
        """The plan's (or [limits]'s) rate limits, overridden by the org's and then by
        the key's own rpm/tpm."""
        out = rate_limits(self.live.config, plan)
        overrides: dict[str, int | None] = {}
        if org is not None:
            for name in ("key_rpm", "key_tpm", "account_rpm", "account_tpm"):
                overrides[name] = org.limit(name)
        if ks is not None:
            overrides["key_rpm"] = ks.rpm or overrides.get("key_rpm")
            overrides["key_tpm"] = ks.tpm or overrides.get("key_tpm")
        for field_name, rate in overrides.items():
            if rate:
                name = field_name.replace("_", "-")
                out[name] = Limit(name, rate, _burst(rate, self.live.config.limits), 60,
                                  "tokens" if field_name.endswith("tpm") else "requests")
        return out

    async def _rate_check(self, prep: "Prepared", plan: PlanConfig | None, tokens: int | None,
                          org: Any = None, ks: Any = None
                          ) -> tuple[Decision | None, list[tuple[Any, Limit, int]]]:
        """``tokens`` None: the operation has no tokens to count, only requests."""
        ctx = prep.ctx
        items = []
        for name, limit in self._limits(plan, org, ks).items():
            if tokens is None and limit.unit != "requests":
                continue
            who = ("key", ctx.key_id) if name.startswith("key") else ("account", ctx.account_id)
            items.append((who, limit, 1 if limit.unit == "requests" else tokens))
        if not items:
            return None, []
        decision = await self.limiter.acquire(items)
        if not decision.allowed:
            limit = decision.refused_by
            if decision.retry_after_s is None:
                message = (f"Rate limit: this request needs up to {tokens} tokens but "
                           f"{limit.name} allows at most {limit.burst} at once; lower "
                           f"max_tokens or shorten the prompt")
            else:
                message = (f"Rate limit exceeded: {limit.name} allows {limit.rate} "
                           f"{limit.unit} per minute (burst {limit.burst}); retry in "
                           f"{decision.retry_after_s:.2f}s")
            raise errors.RateLimited(message, retry_after=decision.retry_after_s,
                                     code=limit.name.replace("-", "_"),
                                     headers=rate_headers(decision))
        return decision, [i for i in items if i[1].unit == "tokens"]

    async def admit(self, prep: "Prepared") -> None:
        ctx = prep.ctx
        entry = prep.entry
        by_tokens = prep.op is None or prep.op.pricing.basis == "tokens"
        plan = await self.plan_for(ctx.account_id)
        org = ks = None
        if self.orgs is not None:
            org = await self.orgs.for_account(ctx.account_id)
            ks = await self.orgs.key_settings(ctx.key_id)
            self.orgs.check_mode(org, prep.selection.mode if prep.selection else None)
            ctx.org = org        # dispatch uses the org's own credentials
            if getattr(prep.op, "kind", "chat") == "chat":   # and its own chat routes
                prep.selection = self.orgs.routed(org, prep.selection)
        # A call with no catalog model (an MCP tool, a remote agent) has its own allow
        # lists; the plan's model, mode and token caps do not apply to it.
        if plan is not None and entry is not None:
            check_request(self.live.config, plan, model_id=entry.model.id,
                          mode=prep.selection.mode, stream=prep.stream,
                          max_tokens=prep.max_tokens,
                          session_count=session_messages(prep.req, prep.selection)
                          if by_tokens else None)
            if by_tokens and plan.max_tokens is not None and prep.req.max_tokens is None:
                # The cap is also the default, so the upstream never runs past it.
                prep.req = dataclasses.replace(
                    prep.req, max_tokens=min(plan.max_tokens, entry.model.max_output_tokens))
        markup_bp = 0
        if by_tokens:
            max_out = prep.req.max_tokens or entry.model.max_output_tokens
            hold = worst_case_micros(entry.price, prep.prompt_tokens, max_out)
            if prep.selection.by_mode:
                markup_bp = self.live.config.markups.basis_points(prep.selection.mode)
                hold += markup_micros(hold, markup_bp)
            decision, token_items = await self._rate_check(prep, plan,
                                                           prep.prompt_tokens + max_out, org, ks)
        else:
            max_out = 0
            hold = prep.op.hold_micros(entry, prep.req)
            decision, token_items = await self._rate_check(prep, plan,
                                                           prep.op.rate_tokens(prep.req), org, ks)
        budgets = self.orgs.budgets(org, ctx.key_id, ks) if self.orgs is not None else ()
        now = self.clock()
        windows = plan_windows(plan, now) if plan is not None else ()
        # Shielded: a reserve that completes after its caller stopped waiting would leave
        # a hold nobody ends. Any pending cancel lands at the caller's next checkpoint,
        # inside the try that voids the hold.
        try:
            # A stream's headers leave before it settles, so it reports its standing
            # after the hold; anything else reports it after settlement instead.
            admitted = await self.ledger.admit(
                ctx.account_id, ctx.request_id, hold, plan=plan, windows=windows,
                input_tokens=prep.prompt_tokens, output_tokens=max_out, now=now,
                position=prep.stream, budgets=budgets, shielded=True)
        except BaseException:
            with trio.CancelScope(shield=True):
                for key, limit, cost in token_items:
                    await self.limiter.refund(key, limit, cost)
            raise
        prep.hold_id = admitted.hold_id
        if decision is not None:
            prep.headers.update(rate_headers(decision))
        prep.headers.update(position_headers(admitted.position, admitted.funded_by))
        self._live[ctx.request_id] = _Live(plan, token_items, prep.headers, markup_bp)

    def _log(self, prep: "Prepared", error: BaseException | None, usage: c.Usage | None,
             cost: int, markup: int = 0) -> dict[str, Any]:
        ctx = prep.ctx
        model, provider, upstream_model = prep.billed
        return dict(
            request_id=ctx.request_id, key_id=ctx.key_id, account_id=ctx.account_id,
            route=ctx.route, dialect=ctx.dialect, model=model,
            provider=provider, upstream_model=upstream_model, status=status_of(error),
            error_type=error_type_of(error), latency_ms=(time.monotonic() - ctx.started) * 1000.0,
            tokens_in=usage.input_tokens if usage else 0,
            tokens_out=usage.output_tokens if usage else 0,
            cached_tokens=usage.cached_input_tokens if usage else 0,
            cost_micros=cost, estimated=bool(usage and usage.estimated), failover=prep.failover,
            stream=prep.stream, mode=prep.selection.mode if prep.selection else None,
            markup_micros=markup)

    def _cost(self, prep: "Prepared", usage: c.Usage | None, units: int | None,
              markup_bp: int = 0) -> int | None:
        if prep.op is None or prep.op.pricing.basis == "tokens":
            if usage is None:
                return None
            base = cost_micros(prep.selection.entry.price, usage)
            return base + markup_micros(base, markup_bp)
        entry = prep.entry
        return (prep.op.pricing.cost_micros(entry.model if entry else None, units)
                if units else None)

    async def close(self, prep: "Prepared", usage: c.Usage | None,
                    error: BaseException | None, *, units: int | None = None) -> Outcome:
        """End the hold exactly once: settle on usage (tokens) or ``units`` (other
        operations), void when nothing was produced. Closing a request again returns
        what was recorded the first time."""
        prep.ctx.logged = True
        live = self._live.pop(prep.ctx.request_id, None)
        model = prep.billed[0]
        detail = operator_detail(prep.ctx.request_id, error)
        # Shielded from the caller, bounded by its own deadline: one scope for both.
        with trio.CancelScope(shield=True, deadline=trio.current_time() + _SETTLE_DEADLINE):
            bp = live.markup_bp if live is not None else 0
            cost = self._cost(prep, usage, units, bp)
            base = self._cost(prep, usage, units) if bp else cost
            log = self._log(prep, error, usage, cost or 0, (cost or 0) - (base or 0))
            plan = live.plan if live is not None else None
            windows = (plan_windows(plan, self.clock())
                       if plan is not None and not prep.stream else ())
            try:
                closed = await self.ledger.close(
                    prep.hold_id, cost, input_tokens=usage.input_tokens if usage else 0,
                    output_tokens=usage.output_tokens if usage else 0,
                    estimated=bool(usage and usage.estimated), log=log,
                    account_id=None if prep.stream else prep.ctx.account_id,
                    windows=windows)
            except errors.SettleFailed as failed:
                # Voided instead: the rate limiter gets its tokens back, the
                # dashboard sees the row that was written, the client an error.
                await self._refund(live, None)
                self.notify(dict(failed.log or log))
                raise
            result = closed.result
            if closed.alerts and self.orgs is not None:
                await self.orgs.alert(closed.alerts)
            await self._refund(live, usage)
            if not result.already_closed:
                self.notify({**log, "cost_micros": result.charged_micros, **detail})
            prep.headers.update(position_headers(closed.position, closed.funded_by))
            if usage is None:
                return Outcome(model, result.charged_micros, 0, 0, failover=prep.failover,
                               headers=prep.headers)
            return Outcome(model, result.charged_micros, usage.input_tokens,
                           usage.output_tokens, usage.estimated, prep.failover, prep.headers)
        # Deadline passed: the hold stays open for the sweeper to expire.
        return Outcome(model, 0, 0, 0, failover=prep.failover, headers=prep.headers)

    async def _refund(self, live: _Live | None, usage: c.Usage | None) -> None:
        if live is None:
            return
        used = usage.input_tokens + usage.output_tokens if usage else 0
        for key, limit, charged in live.tokens:
            await self.limiter.refund(key, limit, charged - used)

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
            await self.ledger.log_only(log)
        self.notify(log)

    async def hold_job(self, ctx: "CallContext", model_id: str, amount_micros: int, *,
                       request_id: str) -> str:
        """A fresh hold for a long job whose first hold ended underneath it (swept, or
        expired by a restart): no plan or rate checks, which the job already passed.
        Returns the hold id."""
        plan = await self.plan_for(ctx.account_id)
        now = self.clock()
        windows = plan_windows(plan, now) if plan is not None else ()
        budgets = await self.budgets_for(ctx.account_id, ctx.key_id)
        with trio.CancelScope(shield=True):
            admitted = await self.ledger.admit(ctx.account_id, request_id, amount_micros,
                                                 plan=plan, windows=windows, now=now,
                                                 position=False, budgets=budgets)
        return admitted.hold_id

    async def budgets_for(self, account_id: str, key_id: str | None = None) -> tuple:
        """The key and org budgets a hold of this caller counts against."""
        if self.orgs is None:
            return ()
        org = await self.orgs.for_account(account_id)
        return self.orgs.budgets(org, key_id, await self.orgs.key_settings(key_id))

    def job_log(self, ctx: "CallContext", *, model: str, provider: str | None,
                upstream_model: str | None, error: BaseException | None,
                cost: int) -> dict[str, Any]:
        """The request-log row of a job that ends after its request did."""
        return dict(request_id=ctx.request_id, key_id=ctx.key_id, account_id=ctx.account_id,
                    route=ctx.route, dialect=ctx.dialect, model=model, provider=provider,
                    upstream_model=upstream_model, status=status_of(error),
                    error_type=error_type_of(error),
                    latency_ms=(time.monotonic() - ctx.started) * 1000.0,
                    tokens_in=0, tokens_out=0, cached_tokens=0, cost_micros=cost,
                    estimated=False, failover=False, stream=False)

    async def settled_elsewhere(self, request_id: str, usage: c.Usage | None) -> None:
        """A request whose hold its job settled in its own transaction (gateway.jobs):
        forget it, and give the rate limiter back the tokens it did not use, as close does."""
        await self._refund(self._live.pop(request_id, None), usage)

    def forget(self, request_id: str) -> None:
        """A job keeps its hold past its request: its close happens elsewhere."""
        self._live.pop(request_id, None)
