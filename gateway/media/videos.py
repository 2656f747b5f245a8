"""/v1/videos: submit, list, read, cancel and download video jobs (OpenAI Videos shape).

Submission holds the model's video_usd before anything goes upstream; the job row is
written before the upstream create, so a crash in between leaves a row the poller
fails and voids (gateway/engine/jobs.py) instead of a hold nobody owns.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import trio

import store
from gateway import errors
from gateway.billing.ledger import Ledger
from gateway.config import RouteConfig
from gateway.engine.call import CallContext, Prepared
from gateway.engine.jobs import MediaService
from gateway.engine.live import Live
from gateway.engine.operations import Operation, Pricing, Upstream
from gateway.engine.pipeline import Pipeline
from gateway.media.images import MediaRoutes

_FORWARDED = ("seconds", "size", "aspect_ratio", "negative_prompt", "seed", "quality",
              "input_reference")


def job_object(job: Any) -> dict[str, Any]:
    params = json.loads(job.params or "{}")
    obj: dict[str, Any] = {"id": job.id, "object": "video", "model": job.model,
                           "status": job.status, "progress": job.progress,
                           "created_at": int(job.created_at),
                           "completed_at": int(job.completed_at) if job.completed_at else None,
                           "cost_usd_micros": job.price_micros}
    obj.update({k: v for k, v in params.items() if k in ("seconds", "size")})
    if job.error and job.status in ("failed", "cancelled"):
        obj["error"] = {"code": f"video_{job.status}", "message": job.error}
    return obj


@dataclass(frozen=True)
class VideoRequest:
    model: str
    prompt: str
    params: dict[str, Any]


async def _submit(up: Upstream, req: VideoRequest, route: RouteConfig) -> str:
    """The provider method: create the job upstream, answering its upstream id."""
    remote = await up.media.video_create({"model": route.model, "prompt": req.prompt,
                                          **req.params})
    upstream_id = remote.get("id")
    if not isinstance(upstream_id, str) or not upstream_id:
        raise errors.UpstreamProtocolError(f"upstream {route.provider} sent no video id")
    return upstream_id


# One video per request, at the model's video_usd; the job settles when it completes.
VIDEO: Operation[VideoRequest, str] = Operation(
    kind="video", capability="video", pricing=Pricing.units("video_usd", "video"),
    call=_submit, noun="generate video")


class Videos:
    """/v1/videos on the engine: submission through the pipeline, the job's row in the
    store, and its life after that on the job runner (gateway.jobs.video, which calls
    the media service's `advance` under a lease)."""

    def __init__(self, pipeline: Pipeline, routes: MediaRoutes, media: MediaService,
                 writer: Any, ledger: Ledger, live: Live, jobs: Any) -> None:
        self.pipeline = pipeline
        self.jobs = jobs         # gateway.jobs.Jobs: polls each video under a lease
        self.routes = routes
        self.media = media
        self.writer = writer     # store.Writer
        self.ledger = ledger     # for its after_upstream fault hook (tests)
        self.live = live         # the download cap, read per request (reload swaps it)

    async def create(self, ctx: CallContext, body: dict[str, Any]) -> tuple[Any, dict]:
        model_name = body.get("model")
        if not isinstance(model_name, str) or not model_name:
            raise errors.InvalidRequest("model is required", field="model")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise errors.InvalidRequest("prompt is required", field="prompt")
        req = VideoRequest(model_name, prompt, {k: body[k] for k in _FORWARDED
                                                 if body.get(k) is not None})
        job_id = "video_" + secrets.token_hex(12)
        media = self.media
        writer = self.writer

        async def started(prep: Prepared) -> None:
            # Marked before the row exists: the poller may run the moment the insert
            # commits, and a row with no upstream id that is not being submitted counts
            # as abandoned.
            media.submitting.add(job_id)
            route = prep.selection.routes[0]
            await writer.call(store.insert_video_job, id=job_id, account_id=ctx.account_id,
                              key_id=ctx.key_id, request_id=ctx.request_id,
                              model=prep.entry.model.id, provider=route.provider,
                              upstream_model=route.model, prompt=prompt,
                              params=json.dumps(req.params),
                              price_micros=prep.op.hold_micros(prep.entry, req),
                              hold_id=prep.hold_id)

        async def failed(prep: Prepared, exc: BaseException) -> None:
            message = exc.message if isinstance(exc, errors.PrismError) else type(exc).__name__
            try:
                await media.end(job_id, "failed", message)
            finally:
                media.submitting.discard(job_id)

        upstream_id, prep = await self.pipeline.submit(
            ctx, VIDEO, req, model=model_name,
            routes=lambda sel: self.routes.usable(sel.entry, "video"),
            started=started, failed=failed)
        try:
            try:
                self.ledger.after_upstream(ctx.route)
                await writer.call(store.update_video_job, job_id, upstream_id=upstream_id,
                                  provider=prep.route.provider, upstream_model=prep.route.model)
            except BaseException as exc:
                # The client gets an error, so the job fails and its hold is voided now.
                with trio.CancelScope(shield=True):
                    await failed(prep, exc)
                raise
        finally:
            media.submitting.discard(job_id)
        # From here the job runner polls it (gateway.jobs.video), under a lease.
        await self.jobs.track_video(job_id, ctx.account_id, ctx.key_id)
        job = await writer.call(store.get_video_job, job_id)
        return job, prep.headers

    async def _own(self, ctx: CallContext, job_id: str) -> Any:
        job = await self.writer.call(store.get_video_job, job_id, ctx.account_id)
        if job is None:
            raise errors.NotFound(f"No video {job_id!r}", code="video_not_found")
        return job

    async def get(self, ctx: CallContext, job_id: str) -> Any:
        return await self._own(ctx, job_id)

    async def listing(self, ctx: CallContext) -> list[Any]:
        return await self.writer.call(store.list_video_jobs, ctx.account_id)

    async def cancel(self, ctx: CallContext, job_id: str) -> Any:
        job = await self._own(ctx, job_id)
        if not await self.media.end(job.id, "cancelled", "cancelled by the client"):
            job = await self._own(ctx, job_id)
            raise errors.InvalidRequest(f"The video {job_id!r} has already {job.status}; only "
                                        f"a queued or in-progress video can be cancelled",
                                        code="video_not_cancellable")
        client = self.media.client(job.provider)
        if client is not None and job.upstream_id:
            try:
                await client.video_delete(job.upstream_id)
            except errors.PrismError:
                pass   # the hold is voided whatever the upstream says
        return await self._own(ctx, job_id)

    async def content(self, ctx: CallContext, job_id: str) -> tuple[bytes, str]:
        job = await self._own(ctx, job_id)
        if job.status != "completed":
            raise errors.InvalidRequest(f"The video {job_id!r} is {job.status}; content is "
                                        f"available once it is completed",
                                        code="video_not_ready")
        client = self.media.client(job.provider)
        if client is None:
            raise errors.UpstreamError(f"provider {job.provider} has no video API")
        return await client.video_content(job.upstream_id, self.live.config.media.video_max_bytes)
