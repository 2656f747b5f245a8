"""Routes of the job runner (gateway.jobs): async completions, scheduled completions,
batches, and the operator's view of every account's batches.

    (POST /v1/chat/completions, /v1/responses, /v1/messages with "async": true or
     X-Prism-Async: true -> 202, through `queue` below)
    GET    /v1/async/{id}           status; the response in the asking dialect and cost
    DELETE /v1/async/{id}           cancel (a queued job costs nothing)
    GET    /v1/webhook_secret       the account's webhook signing secret
    POST   /v1/scheduled            GET /v1/scheduled    GET|DELETE /v1/scheduled/{id}
    POST   /v1/batches              GET /v1/batches      GET /v1/batches/{id}
    POST   /v1/batches/{id}/cancel
    POST   /-/batches (account_id)  GET /-/batches       GET /-/batches/{id}
    POST   /-/batches/{id}/cancel
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request


from gateway import errors
from gateway.engine.call import CallContext
from gateway.http import admin, common
from gateway.http.files_routes import page, page_args

bp = Blueprint("jobs", __name__)
# The operator's routes share the admin blueprint's guard (the admin token).
admin_bp = Blueprint("jobs_admin", __name__, url_prefix="/-")
admin_bp.before_request(admin._guard)

_ASYNC = ("async",)
_SCHEDULED = ("scheduled",)
_BATCH = ("batch",)


def _json(payload: Any, status: int = 200) -> Response:
    return Response(common.dumps(payload), status=status, content_type="application/json")


def wants_async(body: dict, header: str | None) -> bool:
    flag = body.get("async")
    if flag is not None and not isinstance(flag, bool):
        raise errors.InvalidRequest("async must be true or false", field="async")
    return flag is True or (header or "").strip().lower() in ("true", "1", "yes")


async def queue(s: Any, ctx: CallContext, route: str, body: dict) -> bytes:
    """The 202 body for a generation request asked to run asynchronously."""
    ctx.logged = True   # nothing ran yet: the job's own request writes the log row
    obj = await s.jobs.submit_async(ctx, route, body)
    return common.dumps(obj).encode()


async def queue_response(ctx: CallContext, route: str, body: dict) -> Response:
    payload = await queue(common.services(), ctx, route, body)
    return Response(payload, status=202, content_type="application/json",
                    headers={"X-Request-Id": ctx.request_id})


def _jobs():
    return common.services().jobs


async def _caller(path: str) -> CallContext:
    return await common.authenticate(path, "openai", "x-api-key", log=False)


# ---------------------------------------------------------------- async

@bp.get("/v1/async/<job_id>")
async def get_async(job_id: str):
    ctx = await _caller("/v1/async")
    return _json(await _jobs().render(await _jobs().get(job_id, ctx.account_id, _ASYNC)))


@bp.delete("/v1/async/<job_id>")
async def cancel_async(job_id: str):
    ctx = await _caller("/v1/async")
    job = await _jobs().cancel(job_id, ctx.account_id, _ASYNC)
    return _json(await _jobs().render(job))


@bp.get("/v1/webhook_secret")
async def webhook_secret():
    ctx = await _caller("/v1/webhook_secret")
    return _json({"object": "webhook_secret",
                  "secret": await _jobs().webhooks.secret(ctx.account_id),
                  "signature_header": "X-Prism-Webhook-Signature",
                  "timestamp_header": "X-Prism-Webhook-Timestamp",
                  "scheme": "v1=hex(HMAC-SHA256(secret, timestamp + '.' + body))"})


# ---------------------------------------------------------------- scheduled

@bp.post("/v1/scheduled")
async def create_scheduled():
    ctx = await _caller("/v1/scheduled")
    return _json(await _jobs().schedule(ctx, await common.read_json_object()), 201)


@bp.get("/v1/scheduled")
async def list_scheduled():
    ctx = await _caller("/v1/scheduled")
    limit, after, _ = page_args(100, 20)
    status = request.args.get("status") or None
    data, more = await _jobs().list("scheduled", ctx.account_id, limit=limit, after=after,
                                    status=status)
    return _json(page(data, more))


@bp.get("/v1/scheduled/<job_id>")
async def get_scheduled(job_id: str):
    ctx = await _caller("/v1/scheduled")
    return _json(await _jobs().render(await _jobs().get(job_id, ctx.account_id, _SCHEDULED)))


@bp.delete("/v1/scheduled/<job_id>")
async def cancel_scheduled(job_id: str):
    ctx = await _caller("/v1/scheduled")
    return _json(await _jobs().render(await _jobs().cancel(job_id, ctx.account_id, _SCHEDULED)))


# ---------------------------------------------------------------- batches

@bp.post("/v1/batches")
async def create_batch():
    ctx = await _caller("/v1/batches")
    return _json(await _jobs().create_batch(ctx.account_id, ctx.key_id,
                                            await common.read_json_object()))


@bp.get("/v1/batches")
async def list_batches():
    ctx = await _caller("/v1/batches")
    limit, after, _ = page_args(100, 20)
    data, more = await _jobs().list("batch", ctx.account_id, limit=limit, after=after)
    return _json(page(data, more))


@bp.get("/v1/batches/<batch_id>")
async def get_batch(batch_id: str):
    ctx = await _caller("/v1/batches")
    return _json(await _jobs().render(await _jobs().get(batch_id, ctx.account_id, _BATCH)))


@bp.post("/v1/batches/<batch_id>/cancel")
async def cancel_batch(batch_id: str):
    ctx = await _caller("/v1/batches")
    return _json(await _jobs().render(await _jobs().cancel(batch_id, ctx.account_id, _BATCH)))


# ---------------------------------------------------------------- operator

async def _with_owner(job) -> dict:
    obj = await _jobs().render(job)
    obj["account_id"] = job.account_id
    return obj


@admin_bp.post("/batches")
async def admin_create_batch():
    body = await common.read_json_object()
    account_id = body.pop("account_id", None)
    if not isinstance(account_id, str):
        raise errors.InvalidRequest("account_id is required", field="account_id")
    obj = await _jobs().create_batch(account_id, None, body)
    obj["account_id"] = account_id
    return _json(obj)


@admin_bp.get("/batches")
async def admin_list_batches():
    limit, after, _ = page_args(100, 20)
    account_id = request.args.get("account_id") or None
    rows, more = await _jobs().rows("batch", account_id, limit=limit, after=after)
    return _json(page([await _with_owner(j) for j in rows], more))


@admin_bp.get("/batches/<batch_id>")
async def admin_get_batch(batch_id: str):
    obj = await _with_owner(await _jobs().get(batch_id, None, _BATCH))
    obj["native_batches"] = await _jobs().native_batches(batch_id)   # upstream batches
    return _json(obj)


@admin_bp.post("/batches/<batch_id>/cancel")
async def admin_cancel_batch(batch_id: str):
    return _json(await _with_owner(await _jobs().cancel(batch_id, None, _BATCH)))
