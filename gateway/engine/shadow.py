"""Shadow traffic: a sample of a model's requests sent again to its shadow model, after
the client's answer is complete, to compare the two.

A model names its shadow in prism.toml (`shadow = { model = "...", sample_rate = 0.1 }`;
the shadow is another model entry, so it has routes and prices of its own). The
pipeline calls `offer` once a request has settled; a sampled one is queued (a full
queue drops it, counted) and this service's own tasks make the shadow call later,
so the client's response is never delayed by it and never fails because of it.

A shadow call goes through the same pipeline as any call (select, admit, dispatch,
close) on the operator's account (store.shadow), so its cost is in the books but never
on the customer's bill. Each one leaves a store.shadow row with latency, token and cost
figures of both sides and a similarity score of the two outputs; GET /-/shadow/stats
sums them per model pair.
"""
from __future__ import annotations

import dataclasses
import difflib
import logging
import random
import secrets
import time
from typing import Any, Callable

import trio

from gateway import canonical as c
from gateway import errors
from gateway.engine.call import CallContext, Outcome, Prepared
from store.shadow import ensure_operator_account, record_shadow_run, shadow_stats

log = logging.getLogger("prism.shadow")

DIALECT = "shadow"
_QUEUE = 256
_CONCURRENCY = 4
_COMPARE_WORDS = 2000


@dataclasses.dataclass(frozen=True)
class _Job:
    model: str
    shadow_model: str
    req: c.Request
    text: str
    outcome: Outcome
    primary_ms: float


def similarity(a: str, b: str) -> float:
    """How alike two outputs are, 0..1: the matching share of their word sequences."""
    wa, wb = a.split()[:_COMPARE_WORDS], b.split()[:_COMPARE_WORDS]
    if not wa and not wb:
        return 1.0
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


class Shadow:
    def __init__(self, writer: Any, complete: Callable[..., Any], *,
                 rng: Callable[[], float] = random.random) -> None:
        """`complete(ctx, req)` is Pipeline.complete."""
        self._writer = writer
        self._complete = complete
        self._rng = rng
        self._send, self._receive = trio.open_memory_channel(_QUEUE)
        self.dropped = 0
        self.account_id: str | None = None
        self._pending = 0
        self._idle = trio.Event()
        self._idle.set()

    def offer(self, prep: Prepared, text: Callable[[], str], outcome: Outcome) -> None:
        """Called by the pipeline after a chat request settled; never raises, never waits."""
        shadow = getattr(prep.entry.model, "shadow", None)
        if shadow is None or prep.ctx.dialect == DIALECT or self.account_id is None:
            return
        if shadow.sample_rate <= 0 or self._rng() >= shadow.sample_rate:
            return
        req = prep.req
        if not isinstance(req, c.Request):
            return
        job = _Job(prep.entry.model.id, shadow.model, req, text(), outcome,
                   (time.monotonic() - prep.ctx.started) * 1000.0)
        try:
            self._send.send_nowait(job)
        except trio.WouldBlock:
            self.dropped += 1
            return
        self._pending += 1
        self._idle = trio.Event() if self._idle.is_set() else self._idle

    async def wait_idle(self) -> None:
        """Until every queued shadow call has finished (tests, shutdown)."""
        await self._idle.wait()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            self.account_id = await self._writer.call(ensure_operator_account)
        except Exception:   # no shadows (offer checks), but the gateway serves on
            log.exception("shadow traffic is off: the operator account could not be made")
        limit = trio.Semaphore(_CONCURRENCY)
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for job in self._receive:
                await limit.acquire()
                nursery.start_soon(self._one, job, limit)

    async def _one(self, job: _Job, limit: trio.Semaphore) -> None:
        try:
            await self._call(job)
        finally:
            limit.release()
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()

    async def _call(self, job: _Job) -> None:
        ctx = CallContext(request_id="shadow_" + secrets.token_hex(12), route="/-/shadow",
                          dialect=DIALECT, account_id=self.account_id or "")
        ctx.model = job.shadow_model
        req = dataclasses.replace(job.req, model=job.shadow_model, stream=False)
        started = time.monotonic()
        row: dict[str, Any] = {
            "model": job.model, "shadow_model": job.shadow_model,
            "primary_ms": job.primary_ms, "primary_tokens_in": job.outcome.tokens_in,
            "primary_tokens_out": job.outcome.tokens_out,
            "primary_cost_micros": job.outcome.cost_micros}
        try:
            resp, outcome = await self._complete(ctx, req)
        except errors.PrismError as exc:
            row.update(ok=False, error=exc.type_name,
                       shadow_ms=(time.monotonic() - started) * 1000.0)
            log.info("shadow call %s for %s failed: %s", job.shadow_model, job.model,
                     exc.type_name)
        except Exception as exc:   # a shadow must never take the service down
            row.update(ok=False, error=type(exc).__name__,
                       shadow_ms=(time.monotonic() - started) * 1000.0)
            log.exception("shadow call %s for %s failed", job.shadow_model, job.model)
        else:
            shadow_ms = (time.monotonic() - started) * 1000.0
            score = await trio.to_thread.run_sync(similarity, job.text, resp.message.text)
            row.update(ok=True, shadow_ms=shadow_ms, shadow_tokens_in=outcome.tokens_in,
                       shadow_tokens_out=outcome.tokens_out,
                       shadow_cost_micros=outcome.cost_micros, similarity=score)
        with trio.CancelScope(shield=True):
            try:
                await self._writer.call(record_shadow_run, **row)
            except Exception:
                log.exception("recording a shadow call failed")

    async def stats(self, since: float = 0.0) -> dict[str, Any]:
        """Per model pair, plus the operator account the shadow calls are charged to."""
        from store import get_wallet
        pairs = await self._writer.call(shadow_stats, since)
        account: dict[str, Any] = {"id": self.account_id}
        if self.account_id is not None:
            wallet = await self._writer.call(get_wallet, self.account_id)
            account.update(balance_micros=wallet.balance_micros, held_micros=wallet.held_micros)
        return {"operator_account": account, "dropped": self.dropped,
                "queued": self._pending, "pairs": pairs}
