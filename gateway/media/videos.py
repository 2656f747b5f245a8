"""/v1/videos: submit, list, read, cancel and download video jobs (OpenAI Videos shape).

Submission holds the model's video_usd before anything goes upstream; the job row is
written before the upstream create, so a crash in between leaves a row the poller
fails and voids (gateway/media/jobs.py) instead of a hold nobody owns.
"""
from __future__ import annotations

import contextlib
import json
import secrets
from typing import TYPE_CHECKING, Any

import trio

import store
from gateway import errors
from gateway.billing.pricing import usd_to_micros
from gateway.media import money
from gateway.media.images import usable_routes
from gateway.media.jobs import media_of
from gateway.pipeline import CallContext
from gateway.providers.base import api_key, scrub

if TYPE_CHECKING:
    from gateway.services import Services

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


async def create(s: "Services", ctx: CallContext, body: dict[str, Any]) -> tuple[Any, dict]:
    model_name = body.get("model")
    if not isinstance(model_name, str) or not model_name:
        raise errors.InvalidRequest("model is required", field="model")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise errors.InvalidRequest("prompt is required", field="prompt")
    ctx.model = model_name
    entry = s.catalog.resolve(model_name)
    usable = usable_routes(s, entry, "video")
    if entry.model.video_usd is None:
        raise errors.PriceMissing(
            f"The model {entry.public_id!r} has no video_usd price configured; the gateway "
            f"refuses to generate video unbilled", code="price_missing")
    price = usd_to_micros(entry.model.video_usd)
    params = {k: body[k] for k in _FORWARDED if body.get(k) is not None}
    route, client = usable[0]
    held = await money.hold(s, ctx, entry.model.id, price)
    ctx.logged = True   # the job's close writes the log row, when it ends
    job_id = "video_" + secrets.token_hex(12)
    media = media_of(s)
    # Marked before the row exists: the poller may run the moment the insert commits,
    # and a row with no upstream id that is not being submitted counts as abandoned.
    media.submitting.add(job_id)
    try:
        try:
            await s.writer.call(store.insert_video_job, id=job_id, account_id=ctx.account_id,
                                key_id=ctx.key_id, request_id=ctx.request_id,
                                model=entry.model.id, provider=route.provider,
                                upstream_model=route.model, prompt=prompt,
                                params=json.dumps(params), price_micros=price,
                                hold_id=held.hold_id)
        except BaseException as exc:
            # No job row owns the hold: void it now, not when the sweeper comes by.
            log = money.log_record(ctx, model=entry.model.id, provider=route.provider,
                                   upstream_model=route.model, error=exc, cost=0)
            await money.close(s, held, None, log, ctx.account_id, exc)
            raise
        upstream_id = None
        try:
            remote = await client.video_create({"model": route.model, "prompt": prompt, **params})
            upstream_id = remote.get("id")
            if not isinstance(upstream_id, str) or not upstream_id:
                upstream_id = None
                raise errors.UpstreamProtocolError("upstream sent no video id")
            s.ledger.after_upstream(ctx.route)
            await s.writer.call(store.update_video_job, job_id, upstream_id=upstream_id)
        except BaseException as exc:
            if isinstance(exc, errors.PrismError):
                scrub(exc, route.provider, (api_key(s.config.provider(route.provider)),),
                      ctx.request_id)
            message = exc.message if isinstance(exc, errors.PrismError) else type(exc).__name__
            with trio.CancelScope(shield=True):
                # The client gets an error, so the job fails and its hold is voided now;
                # a job the upstream did start is cancelled there too.
                await media.end(job_id, "failed", message)
                if upstream_id is not None:
                    with contextlib.suppress(errors.PrismError):
                        await client.video_delete(upstream_id)
            raise
    finally:
        media.submitting.discard(job_id)
    media.wake()
    job = await s.writer.call(store.get_video_job, job_id)
    return job, held.headers


async def _own(s: "Services", ctx: CallContext, job_id: str) -> Any:
    job = await s.writer.call(store.get_video_job, job_id, ctx.account_id)
    if job is None:
        raise errors.NotFound(f"No video {job_id!r}", code="video_not_found")
    return job


async def get(s: "Services", ctx: CallContext, job_id: str) -> Any:
    return await _own(s, ctx, job_id)


async def listing(s: "Services", ctx: CallContext) -> list[Any]:
    return await s.writer.call(store.list_video_jobs, ctx.account_id)


async def cancel(s: "Services", ctx: CallContext, job_id: str) -> Any:
    job = await _own(s, ctx, job_id)
    media = media_of(s)
    if not await media.end(job.id, "cancelled", "cancelled by the client"):
        job = await _own(s, ctx, job_id)
        raise errors.InvalidRequest(f"The video {job_id!r} has already {job.status}; only a "
                                    f"queued or in-progress video can be cancelled",
                                    code="video_not_cancellable")
    client = media.client(job.provider)
    if client is not None and job.upstream_id:
        try:
            await client.video_delete(job.upstream_id)
        except errors.PrismError:
            pass   # the hold is voided whatever the upstream says
    return await _own(s, ctx, job_id)


async def content(s: "Services", ctx: CallContext, job_id: str) -> tuple[bytes, str]:
    job = await _own(s, ctx, job_id)
    if job.status != "completed":
        raise errors.InvalidRequest(f"The video {job_id!r} is {job.status}; content is "
                                    f"available once it is completed", code="video_not_ready")
    client = media_of(s).client(job.provider)
    if client is None:
        raise errors.UpstreamError(f"provider {job.provider} has no video API")
    return await client.video_content(job.upstream_id, s.config.media.video_max_bytes)
