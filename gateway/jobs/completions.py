"""Async and scheduled completions: the runner's handlers and the objects clients see.

An async job runs its one request through the engine (gateway.jobs.calls) and records
the response, in the dialect it was asked in, in the same transaction that settles it.
A scheduled job does the same once per firing, appending the run (result or refusal,
and cost) to its list of runs; a cron schedule then goes back to the queue, due at its
next firing, whatever became of this run (an account that cannot pay records the run
as failed with the refusal, and the schedule goes on).

Upstream failures (5xx) before any output are retried with exponential backoff up to
jobs.max_attempts; client errors (4xx: refusals, bad requests) are final.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import store.jobs as sj
from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.engine.call import CallContext
import gateway.jobs.cron as cronlib
from gateway.jobs.calls import Done, JobCalls, dialect_of
from gateway.jobs.runner import Retry

MAX_RUNS_KEPT = 100


def request_id(job: sj.Job) -> str:
    """One per attempt of one run: the hold's key, so no attempt can be admitted twice."""
    return f"req_{job.id.split('_', 1)[1]}_{job.runs}_{job.attempts}"


def retry_delay(cfg: Any, exc: errors.PrismError, attempt: int) -> float | None:
    """How long to wait before running again, or None when the failure is final: an
    upstream failure (nothing was produced, nothing charged) or a rate limit that says
    when it will pass, up to jobs.max_attempts; client errors never."""
    if attempt >= cfg.max_attempts or isinstance(exc, errors.SettleFailed):
        return None
    backoff = cfg.retry_base_seconds * 2 ** (attempt - 1)
    if isinstance(exc, errors.RateLimited) and exc.retry_after is not None:
        return max(backoff, exc.retry_after)
    return backoff if exc.status >= 500 else None


def failure(calls: JobCalls, err: BaseException, dialect: str) -> dict:
    status, body = calls.error_body(err, dialect)
    return {"status_code": status, "body": body}


class _Base:
    kind = ""

    def __init__(self, calls: JobCalls, admission: Any, config: Callable[[], Any],
                 clock: Callable[[], float], wake_webhooks: Callable[[], None]) -> None:
        self.calls = calls
        self.admission = admission
        self.config = config
        self.clock = clock
        self.wake_webhooks = wake_webhooks

    async def _context(self, job: sj.Job, route: str) -> CallContext:
        ctx = CallContext(request_id=request_id(job), route=route, dialect=dialect_of(route),
                          account_id=job.account_id, key_id=job.key_id)
        ctx.allowed_models = await self.admission.allowed_models(job.account_id)
        return ctx

    def _retry(self, job: sj.Job, exc: errors.PrismError) -> None:
        delay = retry_delay(self.config(), exc, job.attempts)
        if delay is not None:
            raise Retry(delay, exc.message)

    def _webhook(self, job: sj.Job) -> dict:
        if not job.callback_url:
            return {}
        return {"webhook_state": "pending", "webhook_next_at": 0.0, "webhook_attempts": 0}


class AsyncHandler(_Base):
    kind = "async"

    async def run(self, job: sj.Job, owner: str) -> None:
        data = job.data()
        route = data["route"]
        ctx = await self._context(job, route)
        ttl = self.config().result_ttl_seconds

        def record(done: Done):
            def apply(db) -> bool:
                now = time.time()
                return sj.Job.update(
                    state="succeeded", result=json.dumps(done.body), cost_micros=done.cost_micros,
                    settled_request_id=done.request_id, finished_at=now, updated_at=now,
                    expires_at=self.clock() + ttl, lease_owner=None, lease_expires=None,
                    **self._webhook(job)).where(sj._owned(job.id, owner)).execute(db) > 0
            return apply

        try:
            await self.calls.run(ctx, route, data["body"], multiplier=1.0, record=record)
        except sj.LeaseLost:
            return
        except errors.PrismError as exc:
            self._retry(job, exc)
            await self.calls.writer.call(
                sj.update_owned, job.id, owner, state="failed",
                error=json.dumps(failure(self.calls, exc, ctx.dialect)),
                expires_at=self.clock() + ttl, **self._webhook(job))
        self.wake_webhooks()

    async def cancelled(self, job: sj.Job, owner: str) -> None:
        # Cut before its request settled: the engine voided the hold (nothing arrived).
        await self.calls.writer.call(sj.update_owned, job.id, owner, state="cancelled",
                                     expires_at=self.clock() + self.config().result_ttl_seconds,
                                     **self._webhook(job))
        self.wake_webhooks()


class ScheduledHandler(_Base):
    kind = "scheduled"

    def _after_run(self, job: sj.Job, ok: bool) -> dict:
        data = job.data()
        if data.get("cron"):
            nxt = cronlib.parse(data["cron"]).next_after(self.clock(), data.get("timezone", "UTC"))
            return {"state": "queued", "not_before": nxt, "attempts": 0,
                    "lease_owner": None, "lease_expires": None}
        return {"state": "succeeded" if ok else "failed", "finished_at": time.time(),
                "expires_at": self.clock() + self.config().result_ttl_seconds,
                "lease_owner": None, "lease_expires": None}

    def _runs_with(self, job: sj.Job, run: dict) -> str:
        runs = (job.output() or {}).get("runs", [])
        runs.append(run)
        return json.dumps({"runs": runs[-MAX_RUNS_KEPT:]})

    async def run(self, job: sj.Job, owner: str) -> None:
        data = job.data()
        route = data["route"]
        ctx = await self._context(job, route)
        fired_at = self.clock()

        def record(done: Done):
            run = {"run": job.runs + 1, "fired_at": int(fired_at), "status": "succeeded",
                   "request_id": done.request_id, "cost_micros": done.cost_micros,
                   "response": done.body}

            def apply(db) -> bool:
                return sj.Job.update(
                    result=self._runs_with(job, run), runs=job.runs + 1,
                    cost_micros=sj.Job.cost_micros + done.cost_micros,
                    settled_request_id=done.request_id, updated_at=time.time(),
                    **self._after_run(job, True), **self._webhook(job)
                ).where(sj._owned(job.id, owner), sj.Job.runs == job.runs).execute(db) > 0
            return apply

        try:
            await self.calls.run(ctx, route, data["body"], multiplier=1.0, record=record)
        except sj.LeaseLost:
            return
        except errors.PrismError as exc:
            self._retry(job, exc)
            run = {"run": job.runs + 1, "fired_at": int(fired_at), "status": "failed",
                   "request_id": ctx.request_id, "cost_micros": 0,
                   "error": failure(self.calls, exc, ctx.dialect)}
            await self.calls.writer.call(sj.update_owned, job.id, owner,
                                         result=self._runs_with(job, run), runs=job.runs + 1,
                                         error=exc.message, **self._after_run(job, False),
                                         **self._webhook(job))
        self.wake_webhooks()

    async def cancelled(self, job: sj.Job, owner: str) -> None:
        await self.calls.writer.call(sj.update_owned, job.id, owner, state="cancelled",
                                     expires_at=self.clock() + self.config().result_ttl_seconds)


# ---------------------------------------------------------------- client objects

def _cost(micros: int) -> dict:
    return {"cost_micros": micros, "cost_usd": format_usd(micros)}


def async_object(job: sj.Job) -> dict:
    data = job.data()
    out = {"id": job.id, "object": "async.job", "status": job.state, "route": data["route"],
           "model": data["body"].get("model"), "created_at": int(job.created_at),
           "completed_at": int(job.finished_at) if job.finished_at else None,
           "attempts": job.attempts, **_cost(job.cost_micros),
           "request_id": job.settled_request_id,
           "callback_url": job.callback_url, "webhook_status": job.webhook_state}
    if job.state == "succeeded":
        out["result"] = job.output()
    if job.state == "failed" and job.error:
        try:
            out["error"] = json.loads(job.error)
        except ValueError:
            out["error"] = {"status_code": 500, "body": {"message": job.error}}
    return out


def scheduled_object(job: sj.Job) -> dict:
    data = job.data()
    nxt = job.not_before if job.state in ("queued", "running") else None
    return {"id": job.id, "object": "scheduled.job", "status": job.state, "route": data["route"],
            "model": data["body"].get("model"), "cron": data.get("cron"),
            "timezone": data.get("timezone", "UTC"), "created_at": int(job.created_at),
            "next_run_at": nxt, "run_count": job.runs, **_cost(job.cost_micros),
            "callback_url": job.callback_url, "webhook_status": job.webhook_state,
            "runs": (job.output() or {}).get("runs", [])}
