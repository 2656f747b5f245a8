"""Long work on one durable runner: async completions, scheduled completions, batches.

`Jobs` is built once by server.py with the collaborators it uses (the engine's
pipeline and admission, the files of gateway.resources, the store's writer) and runs
the runner in the gateway's nursery. The HTTP layer (gateway/http/jobs_routes.py) only
calls the methods here; every object is looked up by id *and* owner, so another
account's id answers 404 exactly as an unknown one.

Videos run here too (gateway.jobs.video): one runner job per video polls its upstream
job through engine.jobs.MediaService, which keeps the video's money rules.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any, Callable

import trio

import store.batch_lines as sb
import store.batch_native as sbn
import store.jobs as sj
from gateway import errors
from gateway.engine.call import CallContext
import gateway.jobs.cron as cronlib
from gateway.jobs.batches import BATCH_ROUTES, MIXED, WINDOWS, BatchHandler, batch_object
from gateway.jobs.calls import CHAT_ROUTES, ROUTES, JobCalls, decode
from gateway.jobs.completions import AsyncHandler, ScheduledHandler, async_object, scheduled_object
from gateway.jobs.native import NativeBatches
from gateway.jobs.runner import JobRunner
from gateway.jobs.video import VideoHandler
from gateway.jobs.webhooks import Webhooks, check_url

MAX_METADATA_KEYS = 16
MAX_DELAY_S = 366 * 86400


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class Jobs:
    def __init__(self, live: Any, writer: Any, pipeline: Any, admission: Any, inference: Any,
                 resources: Any, media: Any, *, render_error: Callable[[errors.PrismError, str], dict],
                 embed_units: Callable[[Any], int],
                 clock: Callable[[], float] = time.time) -> None:
        self.live = live
        self.writer = writer
        self.clock = clock
        self.resources = resources
        config = lambda: live.config.jobs   # noqa: E731  (reload swaps the config)
        self.config = config
        self.calls = JobCalls(pipeline, admission, inference, writer,
                              render_error=render_error, embed_units=embed_units)
        self.webhooks = Webhooks(writer, config, self.render)
        wake = lambda: self.runner.wake()   # noqa: E731
        self.native = NativeBatches(pipeline, admission, writer, live, self.calls)
        self.batches = BatchHandler(self.calls, admission, resources, lambda: live.catalog,
                                    config, clock, native=self.native)
        self.runner = JobRunner(writer, config, [
            AsyncHandler(self.calls, admission, config, clock, wake),
            ScheduledHandler(self.calls, admission, config, clock, wake),
            self.batches, VideoHandler(media, writer, lambda: live.config.media.video_poll_interval)],
            clock=clock, webhooks=self.webhooks)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self.runner.run(task_status=task_status)
        finally:
            await self.native.aclose()

    async def track_video(self, video_id: str, account_id: str, key_id: str | None) -> None:
        await self.writer.call(sj.track_video, video_id, account_id, key_id)
        self.runner.wake()

    async def render(self, job: sj.Job) -> dict:
        if job.kind == "video":
            return {"id": job.id, "object": "video.job", "status": job.state,
                    "cost_micros": job.cost_micros}
        if job.kind == "async":
            return async_object(job)
        if job.kind == "scheduled":
            return scheduled_object(job)
        counts = await self.writer.call(sb.line_counts, [job.id])
        return batch_object(job, counts[job.id])

    async def render_many(self, jobs: list[sj.Job]) -> list[dict]:
        counts = await self.writer.call(sb.line_counts, [j.id for j in jobs if j.kind == "batch"])
        return [batch_object(j, counts[j.id]) if j.kind == "batch" else await self.render(j)
                for j in jobs]

    # ------------------------------------------------------------ shared

    async def _callback(self, body: dict) -> str | None:
        url = body.get("callback_url")
        if url is None:
            return None
        url = check_url(url)
        try:
            await self.webhooks.vet(url)
        except errors.InvalidRequest as exc:
            raise errors.InvalidRequest(exc.message.replace("image_url", "callback_url"),
                                        field="callback_url", code="callback_url_refused") from None
        return url

    def _check_request(self, route: str, body: dict) -> dict:
        if route not in ROUTES:
            raise errors.InvalidRequest(f"route must be one of {', '.join(ROUTES)}", field="route")
        if body.get("stream"):
            raise errors.InvalidRequest("a queued request cannot stream; leave stream unset",
                                        field="stream")
        body = {k: v for k, v in body.items() if k not in ("async", "callback_url")}
        decode(route, body)
        return body

    async def _insert(self, **fields: Any) -> sj.Job:
        limit = self.config().max_queued_per_account
        try:
            job = await self.writer.call(sj.insert_job, limit=limit, **fields)
        except sj.TooManyJobs:
            raise errors.RateLimited(f"At most {limit} unfinished jobs per account "
                                     "(jobs.max_queued_per_account); wait for some to finish",
                                     code="too_many_jobs") from None
        self.runner.wake()
        return job

    async def get(self, job_id: str, account_id: str | None, kinds: tuple[str, ...]) -> sj.Job:
        job = await self.writer.call(sj.get_job, job_id, account_id, kinds)
        if job is None:
            raise errors.NotFound(f"No job with id '{job_id}'", code="job_not_found")
        return job

    async def cancel(self, job_id: str, account_id: str | None, kinds: tuple[str, ...]) -> sj.Job:
        job = await self.writer.call(sj.request_cancel, job_id, account_id, kinds, self.clock(),
                                     self.config().result_ttl_seconds)
        if job is None:
            raise errors.NotFound(f"No job with id '{job_id}'", code="job_not_found")
        await self.runner.cancel_now(job_id)
        self.runner.wake()
        return job

    # ------------------------------------------------------------ async

    async def submit_async(self, ctx: CallContext, route: str, body: dict) -> dict:
        callback = await self._callback(body)
        body = self._check_request(route, body)
        job = await self._insert(id=_new_id("async_"), kind="async", account_id=ctx.account_id,
                                 key_id=ctx.key_id, payload=json.dumps({"route": route, "body": body}),
                                 callback_url=callback, not_before=0.0)
        return async_object(job)

    # ------------------------------------------------------------ scheduled

    async def schedule(self, ctx: CallContext, spec: dict) -> dict:
        route = spec.get("route", "/v1/chat/completions")
        body = spec.get("body")
        if not isinstance(body, dict):
            raise errors.InvalidRequest("body must be the request body of a generation route",
                                        field="body")
        body = self._check_request(route, body)
        callback = await self._callback(spec)
        now = self.clock()
        tz = spec.get("timezone", "UTC")
        given = [k for k in ("run_at", "delay_seconds", "cron") if spec.get(k) is not None]
        if len(given) != 1:
            raise errors.InvalidRequest("give exactly one of run_at, delay_seconds or cron",
                                        field="run_at")
        cron_expr = None
        try:
            cronlib.zone_of(tz)
        except cronlib.CronError as exc:
            raise errors.InvalidRequest(f"timezone: {exc}", field="timezone") from None
        try:
            if spec.get("cron") is not None:
                cron_expr = spec["cron"]
                due = cronlib.parse(cron_expr).next_after(now, tz)
            elif spec.get("delay_seconds") is not None:
                d = spec["delay_seconds"]
                if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d <= MAX_DELAY_S:
                    raise errors.InvalidRequest(f"delay_seconds must be a number from 0 to "
                                                f"{MAX_DELAY_S}", field="delay_seconds")
                due = now + float(d)
            else:
                due = _rfc3339(spec["run_at"])
                if due > now + MAX_DELAY_S:
                    raise errors.InvalidRequest("run_at is too far ahead", field="run_at")
        except cronlib.CronError as exc:
            raise errors.InvalidRequest(f"cron: {exc}", field="cron") from None
        job = await self._insert(id=_new_id("sched_"), kind="scheduled", account_id=ctx.account_id,
                                 key_id=ctx.key_id, callback_url=callback, not_before=due,
                                 payload=json.dumps({"route": route, "body": body,
                                                     "cron": cron_expr, "timezone": tz}))
        return scheduled_object(job)

    # ------------------------------------------------------------ batches

    async def create_batch(self, account_id: str, key_id: str | None, spec: dict) -> dict:
        endpoint = spec.get("endpoint")
        if not isinstance(endpoint, str) or (endpoint not in BATCH_ROUTES and endpoint != MIXED):
            raise errors.InvalidRequest("endpoint must be one of /v1/chat/completions, "
                                        "/v1/responses, /v1/embeddings, /v1/completions (or "
                                        "'mixed': each line names its own url)", field="endpoint")
        window = spec.get("completion_window", "24h")
        if not isinstance(window, str) or window not in WINDOWS:
            raise errors.InvalidRequest("completion_window must be '24h'", field="completion_window")
        metadata = spec.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_KEYS
                                     or not all(isinstance(k, str) and isinstance(v, str)
                                                and len(k) <= 64 and len(v) <= 512
                                                for k, v in metadata.items())):
            raise errors.InvalidRequest(f"metadata is at most {MAX_METADATA_KEYS} string pairs "
                                        "(keys up to 64, values up to 512 characters)",
                                        field="metadata")
        file_id = spec.get("input_file_id")
        if not isinstance(file_id, str):
            raise errors.InvalidRequest("input_file_id is required", field="input_file_id")
        row = await self.resources.files.get(account_id, file_id)
        if row.purpose != "batch":
            raise errors.InvalidRequest("the input file must be uploaded with purpose=batch",
                                        field="input_file_id")
        job = await self._insert(id=_new_id("batch_"), kind="batch", account_id=account_id,
                                 key_id=key_id, phase="validating", not_before=0.0,
                                 payload=json.dumps({"endpoint": endpoint, "input_file_id": file_id,
                                                     "completion_window": window,
                                                     "deadline": self.clock() + WINDOWS[window],
                                                     "metadata": metadata}))
        return await self.render(job)

    async def native_batches(self, batch_id: str) -> list[dict]:
        """The upstream batches (gateway.jobs.native) a batch's lines went to: the
        operator's view only, since it names providers and their ids."""
        return await self.writer.call(sbn.summary, batch_id)

    async def rows(self, kind: str, account_id: str | None, *, limit: int, after: str | None,
                   status: str | None = None) -> tuple[list[sj.Job], bool]:
        """A page of jobs of `kind` (one account's, or every account's for the operator)."""
        field = "phase" if kind == "batch" else "state"
        return await self.writer.call(
            lambda db: sj.list_jobs(db, kind=kind, account_id=account_id, limit=limit, after=after,
                                    **({field: status} if status else {})))

    async def list(self, kind: str, account_id: str | None, *, limit: int, after: str | None,
                   status: str | None = None) -> tuple[list[dict], bool]:
        rows, more = await self.rows(kind, account_id, limit=limit, after=after, status=status)
        return await self.render_many(rows), more


def _rfc3339(value: Any) -> float:
    import datetime as dt
    if not isinstance(value, str) or len(value) > 64:
        raise errors.InvalidRequest("run_at must be an RFC 3339 time", field="run_at")
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise errors.InvalidRequest("run_at must be an RFC 3339 time", field="run_at") from None
    if t.tzinfo is None:
        raise errors.InvalidRequest("run_at needs a UTC offset (e.g. Z)", field="run_at")
    return t.timestamp()


__all__ = ["Jobs", "CHAT_ROUTES", "ROUTES"]
