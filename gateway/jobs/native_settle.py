"""The money of native batch lines (gateway.jobs.native): holds kept alive while the
upstream works, and each line ended exactly once.

    hold      taken at submission through the engine's own admission (plan checks, rate
              limits, the worst case held), one per line, like a line-by-line call's
    keep      at every poll the open holds' expiry moves on (store.batch_native.
              keep_holds), so the sweeper leaves an hours-long batch alone; a hold that
              ended underneath it (the start-up sweep after a restart) is taken again
              (Admission.hold_job); a line whose hold cannot be taken again fails,
              unbilled, and its upstream result is dropped
    settle    a succeeded line: the provider-reported usage at the batch price, settled
              in the same transaction that records the line's output (store.jobs.
              settle_with with the line's guarded writer), as a line-by-line run does
    void      an errored, cancelled or expired line: its hold voided in the same
              transaction that records its failure; nothing charged

A write that finds the batch no longer ours (LeaseLost) leaves the hold as it is: the
runner that took the batch over ends it.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import trio

import store
import store.batch_lines as sb
import store.batch_native as sn
import store.jobs as sj
from gateway import canonical as c
from gateway import errors
from gateway.billing.pricing import cost_micros
from gateway.billing.windows import plan_windows
from gateway.engine.call import CallContext
from gateway.jobs.calls import _encode, _usage, decode, dialect_of

log = logging.getLogger("prism.jobs.native")

_SETTLE_DEADLINE = 10.0


def line_index(line_id: str) -> int:
    return int(line_id.rsplit(":", 1)[1])


class NativeMoney:
    def __init__(self, admission: Any, writer: Any, live: Any, calls: Any) -> None:
        self.admission = admission
        self.writer = writer
        self.live = live
        self.calls = calls

    def _ctx(self, job: sj.Job, line: sb.BatchLine, request_id: str) -> CallContext:
        return CallContext(request_id=request_id, route=line.url, dialect=dialect_of(line.url),
                           account_id=job.account_id, key_id=job.key_id)

    async def _windows(self, account_id: str) -> tuple:
        plan = await self.admission.plan_for(account_id)
        return plan_windows(plan, time.time()) if plan is not None else ()

    # ------------------------------------------------------------ keeping holds

    async def keep(self, job: sj.Job, owner: str, rows: list[sn.NativeLine],
                   lines: dict[str, sb.BatchLine]) -> None:
        """Every running line of a pending group has an open hold afterwards, or has
        failed (unbilled) because none could be taken again."""
        live = [r for r in rows if lines.get(r.line_id) is not None
                and lines[r.line_id].state == "running"]
        ttl = self.live.config.store.hold_ttl_seconds
        still = await self.writer.call(sn.keep_holds, [r.hold_id for r in live], time.time() + ttl)
        for r in live:
            if r.hold_id in still:
                continue
            line = lines[r.line_id]
            gen = r.hold_gen + 1
            try:
                hold_id = await self.admission.hold_job(
                    self._ctx(job, line, r.request_id), r.model_id, r.hold_micros,
                    request_id=f"{r.request_id}#r{gen}")
            except errors.PrismError as exc:
                await self.void(job, owner, r, line, exc, state="failed", hold=False)
                continue
            await self.writer.call(sn.set_hold, r.line_id, hold_id, gen)
            r.hold_id, r.hold_gen = hold_id, gen

    # ------------------------------------------------------------ ending lines

    async def settle(self, job: sj.Job, owner: str, r: sn.NativeLine, line: sb.BatchLine,
                     resp: c.Response, provider: str, upstream_model: str,
                     multiplier: float) -> bool:
        """Bill one succeeded line and record its output; False when the batch is no
        longer ours."""
        body = {k: v for k, v in json.loads(line.body).items()
                if k not in ("async", "stream", "callback_url")}
        try:
            entry = self.live.catalog.resolve(r.model_id)
            price = entry.price
        except errors.PrismError:
            price = None
        if price is None:
            return await self.void(job, owner, r, line, errors.UpstreamError(
                "The model was removed while its batch ran"), state="failed")
        req = decode(line.url, body)
        usage = resp.usage or await trio.to_thread.run_sync(_usage, resp, req)
        cost = int(cost_micros(price, usage) * multiplier)
        out = _encode(line.url, body, resp, r.model_id, r.request_id, usage)
        ctx = self._ctx(job, line, r.request_id)
        row = self.admission.job_log(ctx, model=r.model_id, provider=provider,
                                     upstream_model=upstream_model, error=None, cost=cost)
        row.update(tokens_in=usage.input_tokens, tokens_out=usage.output_tokens,
                   cached_tokens=usage.cached_input_tokens, estimated=usage.estimated)
        apply = sb.line_writer(r.line_id, job.id, owner, r.attempt, state="succeeded",
                               status_code=200, response=json.dumps(out), cost_micros=cost,
                               request_id=r.request_id)
        return await self._close(job, r, cost, row, apply)

    async def void(self, job: sj.Job, owner: str, r: sn.NativeLine, line: sb.BatchLine,
                   error: errors.PrismError | None, *, state: str, hold: bool = True) -> bool:
        """End a line that produced nothing billable: its hold voided (``hold``) and its
        failure (or cancellation) recorded, in one transaction."""
        fields: dict[str, Any] = {"state": state, "request_id": r.request_id}
        if error is not None:
            error.request_id = r.request_id
            status, body = self.calls.error_body(error, dialect_of(line.url))
            fields.update(status_code=status, error=json.dumps(body))
        apply = sb.line_writer(r.line_id, job.id, owner, r.attempt, **fields)
        if not hold:
            return await self.writer.call(sb.end_line, apply)
        ctx = self._ctx(job, line, r.request_id)
        row = self.admission.job_log(ctx, model=r.model_id, provider=None, upstream_model=None,
                                     error=error or errors.InvalidRequest(
                                         "cancelled", code="batch_cancelled"), cost=0)
        return await self._close(job, r, None, row, apply)

    async def _close(self, job: sj.Job, r: sn.NativeLine, cost: int | None, row: dict,
                     apply: Any) -> bool:
        # Shielded: the upstream did the work; the record and the money go together.
        with trio.CancelScope(shield=True):
            with trio.fail_after(_SETTLE_DEADLINE):
                try:
                    closed = await self.writer.call(
                        sj.settle_with, r.hold_id, cost, log=row, account_id=job.account_id,
                        windows=await self._windows(job.account_id), apply=apply)
                except sj.LeaseLost:
                    return False
        if not closed.result.already_closed:
            self.admission.notify({**row, "cost_micros": closed.result.charged_micros})
        return True

    async def release(self, hold_ids: list[str]) -> None:
        """Void the holds of lines that never reached their upstream (they run line by
        line now, under new holds)."""
        with trio.CancelScope(shield=True):
            for hold_id in hold_ids:
                await self.writer.call(store.quota.close, hold_id, cost_micros=None)
