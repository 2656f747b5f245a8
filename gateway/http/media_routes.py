"""OpenAI-dialect media routes: images and video jobs. Decode, hand to gateway/media
(media.images.Images, media.videos.Videos, built by server.py), encode; the checks live
there and the money in the engine."""
from __future__ import annotations

from quart import Blueprint, Response

from gateway.billing.pricing import format_usd
from gateway.http import common
from gateway.media import videos

bp = Blueprint("media", __name__)


def _json(payload, headers=None, status: int = 200) -> Response:
    return Response(common.dumps(payload), status=status, content_type="application/json",
                    headers=headers or {})


@bp.post("/v1/images/generations")
async def images_generations():
    ctx = await common.authenticate("/v1/images/generations", "openai")
    body = await common.read_json_object()
    payload, outcome = await common.services().images.generate(ctx, body)
    return _json(payload, common.outcome_headers(outcome, outcome.model))


@bp.post("/v1/videos")
async def videos_create():
    ctx = await common.authenticate("/v1/videos", "openai")
    body = await common.read_json_object()
    job, headers = await common.services().videos.create(ctx, body)
    h = {"X-Prism-Model": job.model, "X-Request-Id": ctx.request_id,
         "X-Prism-Cost-Reserved": format_usd(job.price_micros), **headers}
    return _json(videos.job_object(job), h)


@bp.get("/v1/videos")
async def videos_list():
    ctx = await common.authenticate("/v1/videos", "openai", log=False)
    jobs = await common.services().videos.listing(ctx)
    return _json({"object": "list", "data": [videos.job_object(j) for j in jobs]})


@bp.get("/v1/videos/<job_id>")
async def videos_get(job_id: str):
    ctx = await common.authenticate("/v1/videos", "openai", log=False)
    job = await common.services().videos.get(ctx, job_id)
    return _json(videos.job_object(job), {"X-Prism-Model": job.model})


@bp.delete("/v1/videos/<job_id>")
async def videos_cancel(job_id: str):
    ctx = await common.authenticate("/v1/videos", "openai", log=False)
    job = await common.services().videos.cancel(ctx, job_id)
    return _json(videos.job_object(job), {"X-Prism-Model": job.model, "X-Prism-Cost": "0"})


@bp.get("/v1/videos/<job_id>/content")
async def videos_content(job_id: str):
    ctx = await common.authenticate("/v1/videos", "openai", log=False)
    data, ctype = await common.services().videos.content(ctx, job_id)
    return Response(data, content_type=ctype)
