"""The durable job runner in the gateway's nursery: claims due jobs from the store with
leases, runs each on its kind's handler at bounded concurrency, keeps the leases alive
with heartbeats, and hands its jobs back on shutdown.

    claim      store.jobs.claim_jobs: a guarded UPDATE (FOR UPDATE SKIP LOCKED on
               PostgreSQL), up to the kind's free slots, never a job this runner holds
    heartbeat  every lease/3 seconds; a job whose lease is gone is cut at once (another
               runner owns it now), a job whose client asked to cancel is cut and then
               handed to its handler's ``cancelled``
    retry      a handler raises Retry(delay): the job goes back to the queue, due later
    shutdown   running jobs are cut (their in-flight requests voided by the engine's
               shielded close) and released to the queue for the next start

Times: ``clock`` (injectable, tests) decides when a job is due; leases run on the wall
clock, so a test clock that jumps ahead does not make live leases look lapsed.
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import trio

import store.jobs as sj

log = logging.getLogger("prism.jobs")

_CLEANUP_DEADLINE = 10.0


class Retry(Exception):
    """Run the job again after ``delay`` seconds (an upstream failure before output)."""

    def __init__(self, delay: float, error: str) -> None:
        super().__init__(error)
        self.delay = delay
        self.error = error


class Handler(Protocol):
    kind: str

    async def run(self, job: sj.Job, owner: str) -> None: ...

    async def cancelled(self, job: sj.Job, owner: str) -> None: ...


@dataclass
class _Slot:
    job: sj.Job
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    cancel_requested: bool = False


class JobRunner:
    def __init__(self, writer: Any, config: Callable[[], Any], handlers: list[Handler], *,
                 clock: Callable[[], float] = time.time, webhooks: Any = None) -> None:
        self.writer = writer
        self.config = config            # the live [jobs] section (reload swaps it)
        self.handlers = {h.kind: h for h in handlers}
        self.clock = clock
        self.webhooks = webhooks
        self.owner = "runner_" + secrets.token_hex(8)
        self._slots: dict[str, _Slot] = {}
        self._wake = trio.Event()

    def wake(self) -> None:
        """Something was queued or cancelled: look now rather than at the next poll."""
        self._wake.set()

    def limit(self, kind: str) -> int:
        cfg = self.config()
        return {"async": cfg.async_concurrency, "scheduled": cfg.scheduled_concurrency,
                "batch": cfg.batch_concurrency, "video": cfg.video_concurrency}.get(kind, 1)

    def running(self) -> list[sj.Job]:
        return [s.job for s in self._slots.values()]

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeats)
                if self.webhooks is not None:
                    nursery.start_soon(self.webhooks.run, self.wake_signal)
                task_status.started()
                swept_at = 0.0
                while True:
                    await self._claim(nursery)
                    if time.monotonic() - swept_at > self.config().sweep_interval:
                        swept_at = time.monotonic()
                        await self.writer.call(sj.sweep_jobs, self.clock())
                    with trio.move_on_after(self.config().poll_interval):
                        await self._wake.wait()
                    self._wake = trio.Event()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(_CLEANUP_DEADLINE):
                    released = await self.writer.call(sj.release_all, self.owner)
                    if released:
                        log.info("released %d running job(s) for the next start", released)

    def wake_signal(self) -> trio.Event:
        return self._wake

    async def _claim(self, nursery: trio.Nursery) -> None:
        for kind in self.handlers:
            free = self.limit(kind) - sum(1 for s in self._slots.values() if s.job.kind == kind)
            if free <= 0:
                continue
            # Due by the injected clock; a lapsed lease by the wall clock (see docstring).
            jobs = await self.writer.call(sj.claim_jobs, self.owner, kind, free,
                                          now=self.clock(), wall=time.time(),
                                          lease_s=self.config().lease_seconds,
                                          exclude=list(self._slots))
            for job in jobs:
                if job.id in self._slots:
                    continue
                slot = _Slot(job)
                self._slots[job.id] = slot
                nursery.start_soon(self._run_one, slot)

    async def _run_one(self, slot: _Slot) -> None:
        job = slot.job
        handler = self.handlers[job.kind]
        try:
            with slot.scope:
                try:
                    await handler.run(job, self.owner)
                except Retry as r:
                    await self.writer.call(sj.update_owned, job.id, self.owner, state="queued",
                                           not_before=self.clock() + r.delay, error=r.error)
                except Exception as exc:
                    # A handler that could not finish its job (a bug, a store error): fail
                    # the job rather than loop on it, and keep the runner alive.
                    log.exception("job %s failed in its handler", job.id)
                    with trio.CancelScope(shield=True):
                        await self.writer.call(
                            sj.update_owned, job.id, self.owner, state="failed",
                            error=str(exc)[:500],
                            phase="failed" if job.kind == "batch" else job.phase)
            if slot.cancel_requested:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(_CLEANUP_DEADLINE):
                        await handler.cancelled(job, self.owner)
        finally:
            self._slots.pop(job.id, None)
            self._wake.set()

    async def _heartbeats(self) -> None:
        while True:
            await trio.sleep(max(0.05, self.config().lease_seconds / 3))
            await self.beat()

    async def beat(self) -> None:
        ids = list(self._slots)
        if not ids:
            return
        ours = await self.writer.call(sj.heartbeat, self.owner, ids, time.time(),
                                      self.config().lease_seconds)
        for job_id in ids:
            slot = self._slots.get(job_id)
            if slot is None:
                continue
            if job_id not in ours:
                # Lost (or already ended by its handler a moment ago): stop touching it.
                if slot.job.state == "running":
                    slot.scope.cancel()
            elif ours[job_id] and not slot.cancel_requested:
                slot.cancel_requested = True
                slot.scope.cancel()

    async def cancel_now(self, job_id: str) -> None:
        """The client cancelled a job this process may be running: cut it at once."""
        if job_id in self._slots:
            await self.beat()
