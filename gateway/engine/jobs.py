"""The media service: upstream media clients, and each video's upstream polling and
money (the job runner, gateway.jobs.video, calls `advance` for each video under a lease).

A video job's life (store.media holds it, so it outlives the process):

    submitted: hold the price, insert the row, create it upstream
    runner:    GET the upstream job every poll interval; on completed, end the job and
               settle; on failed, end it and void. Ending the job is a guarded UPDATE,
               so a cancel racing a completion has one winner, and settling marks the
               job billed in the same transaction (store.close_video_hold).
    start-up:  the start-up sweep has expired every hold a previous process left open
               (no hold outlives its process), so each pending job takes a fresh hold
               for its price before polling resumes; a job that ended but was never
               billed is billed now. Settlement is therefore exactly once per job.

A job whose hold ended underneath it (swept after hold_ttl_seconds) re-holds before
it settles, for the same reason.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

import trio

import store
from gateway import errors
from gateway.billing.windows import plan_windows
from gateway.engine.call import CallContext
from gateway.providers.openai_media import media_client

if TYPE_CHECKING:
    from gateway.engine.admission import Admission
    from gateway.engine.live import Live

log = logging.getLogger("prism.media")

_UPSTREAM_PENDING = {"queued": "queued", "in_progress": "in_progress", "processing": "in_progress",
                     "pending": "queued", "running": "in_progress"}


def job_context(job: Any) -> CallContext:
    return CallContext(request_id=job.request_id, route="/v1/videos", dialect="openai",
                       account_id=job.account_id, key_id=job.key_id, model=job.model)


class MediaService:
    def __init__(self, live: "Live", writer: Any, admission: "Admission",
                 notify: Callable[[dict[str, Any]], None]) -> None:
        self.live = live
        self.writer = writer
        self.admission = admission
        self.notify = notify
        self._clients: dict[str, Any] = {}
        # One billing at a time: two concurrent bills of a swept job would each take a
        # fresh hold and settle it.
        self._bill_lock = trio.Lock()
        # Jobs this process is creating upstream right now: their upstream id is not
        # known yet, which after a restart would mean "never created", but not here.
        self.submitting: set[str] = set()

    # ------------------------------------------------------------ clients

    def client(self, provider_id: str) -> Any:
        """The media client for a provider (None for kinds without a media API)."""
        if provider_id not in self._clients:
            self._clients[provider_id] = media_client(self.live.config.provider(provider_id))
        return self._clients[provider_id]

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            for c in self._clients.values():
                if c is not None:
                    await c.aclose()
            self._clients.clear()

    # ------------------------------------------------------------ polling

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Give every unfinished video its runner job (the runner's VideoHandler polls
        each one under a lease), then keep the media clients until shutdown."""
        try:
            tracked = await self.writer.call(store.jobs.track_unfinished_videos)
            if tracked:
                log.info("handed %d unfinished video(s) to the job runner", tracked)
            task_status.started()
            await trio.sleep_forever()
        finally:
            await self.aclose()

    async def advance(self, job: Any) -> None:
        """One poll of one video: its upstream state, and its money once it ends."""
        try:
            await self._advance(job)
        except errors.PrismError as exc:
            log.warning("video job %s: %s", job.id, exc.message)

    async def _advance(self, job: Any) -> None:
        if job.status in store.media.ENDED:
            await self.bill(job.id)
            return
        if job.upstream_id is None:
            if job.id in self.submitting:
                return
            # Created upstream never completed (a crash mid-submit): nothing to wait for.
            await self.end(job.id, "failed", "the upstream job was never created")
            return
        client = self.client(job.provider)
        try:
            remote = await client.video_get(job.upstream_id)
        except errors.UpstreamClientError as exc:
            await self.end(job.id, "failed", f"upstream no longer knows the job: {exc.message}")
            return
        status = remote.get("status")
        if status == "completed":
            await self.end(job.id, "completed")
        elif status in ("failed", "cancelled", "expired"):
            err = remote.get("error")
            msg = err.get("message") if isinstance(err, dict) else None
            await self.end(job.id, "failed", msg or f"upstream job {status}")
        elif status in _UPSTREAM_PENDING:
            progress = remote.get("progress")
            fields = {"status": _UPSTREAM_PENDING[status]}
            if isinstance(progress, int) and not isinstance(progress, bool):
                fields["progress"] = max(0, min(100, progress))
            await self.writer.call(store.update_video_job, job.id, **fields)
            await self._keep_hold(job)

    async def _keep_hold(self, job: Any) -> bool:
        """Make sure a pending job's price is held (after a restart or a sweep). False
        (and the job failed) when the wallet or plan can no longer cover it."""
        state = await self.writer.call(store.hold_state, job.hold_id)
        if state == "open":
            return True
        gen = job.hold_generation + 1
        try:
            hold_id = await self.admission.hold_job(job_context(job), job.model,
                                                      job.price_micros,
                                                      request_id=f"{job.request_id}#r{gen}")
        except errors.PrismError as exc:
            if await self.writer.call(store.finish_video_job, job.id, "failed",
                                        error=f"could not hold the price again: {exc.message}"):
                await self._cancel_upstream(job)
            return False
        await self.writer.call(store.update_video_job, job.id, hold_id=hold_id,
                                 hold_generation=gen, only_pending=False)
        job.hold_id, job.hold_generation = hold_id, gen
        return True

    async def _cancel_upstream(self, job: Any) -> None:
        client = self.client(job.provider)
        if client is not None and job.upstream_id:
            try:
                await client.video_delete(job.upstream_id)
            except errors.PrismError as exc:
                log.warning("cancelling upstream video %s: %s", job.upstream_id, exc.message)

    async def end(self, job_id: str, status: str, error: str | None = None) -> bool:
        """Move a pending job to its end state and close its money; False if it had
        already ended."""
        won = await self.writer.call(store.finish_video_job, job_id, status, error=error)
        if won:
            await self.bill(job_id)
        return won

    async def bill(self, job_id: str) -> None:
        """Close an ended job's hold: settle a completed job's price, void the rest."""
        async with self._bill_lock:
            await self._bill(job_id)

    async def _bill(self, job_id: str) -> None:
        job = await self.writer.call(store.get_video_job, job_id)
        if job is None or job.billed:
            return
        completed = job.status == "completed"
        if completed:
            state = await self.writer.call(store.hold_state, job.hold_id)
            if state != "open" and state != "settled":
                # The hold was swept: take a fresh one to settle against.
                gen = job.hold_generation + 1
                hold_id = await self.admission.hold_job(
                    job_context(job), job.model, job.price_micros,
                    request_id=f"{job.request_id}#r{gen}")
                await self.writer.call(store.update_video_job, job.id, hold_id=hold_id,
                                         hold_generation=gen, only_pending=False)
                job.hold_id = hold_id
        ctx = job_context(job)
        error = None if completed else errors.UpstreamError(job.error or f"video {job.status}")
        if job.status == "cancelled":
            error = errors.InvalidRequest("cancelled by the client", code="video_cancelled")
        log_row = self.admission.job_log(ctx, model=job.model, provider=job.provider,
                                   upstream_model=job.upstream_model, error=error,
                                   cost=job.price_micros if completed else 0)
        log_row["latency_ms"] = max(0.0, (job.updated_at - job.created_at) * 1000.0)
        plan = await self.admission.plan_for(job.account_id)
        windows = plan_windows(plan, time.time()) if plan is not None else ()
        with trio.CancelScope(shield=True):
            closed = await self.writer.call(
                store.close_video_hold, job.id, job.hold_id,
                job.price_micros if completed else None, log=log_row,
                account_id=job.account_id, windows=windows)
        if not closed.result.already_closed:
            self.notify({**log_row, "cost_micros": closed.result.charged_micros})
