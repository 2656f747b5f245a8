"""OpenAI-dialect routes: chat completions and the model list. Decode, dispatch, encode."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from quart import Blueprint, Response, request

from gateway.codecs import openai_chat
from gateway.engine.call import CallContext
from gateway.http import common, framing, idempotency, jobs_routes

bp = Blueprint("openai", __name__)



@dataclass
class Reply:
    """A generation's answer before any web framework sees it: the Quart route and the
    lean ASGI path (http/lean.py) both send it."""
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    status: int = 200


@bp.post("/v1/chat/completions")
@idempotency.idempotent
async def chat_completions():
    ctx = await common.authenticate("/v1/chat/completions", "openai")
    body = await common.read_json_object()
    if jobs_routes.wants_async(body, request.headers.get("x-prism-async")):
        body["async"] = True
    reply = await chat(common.services(), ctx, body)
    if reply.stream is not None:
        return Response(reply.stream, headers=reply.headers)
    return Response(reply.body, status=reply.status, headers=reply.headers)


async def chat(s: Any, ctx: CallContext, body: dict) -> Reply:
    """Decode, run the pipeline, encode: the whole of a chat completion but the HTTP."""
    if jobs_routes.wants_async(body, None):
        # Queued for the job runner (gateway.jobs): 202 now, the answer at /v1/async/{id}.
        payload = await jobs_routes.queue(s, ctx, "/v1/chat/completions", body)
        return Reply({"Content-Type": "application/json", "X-Request-Id": ctx.request_id},
                     payload, status=202)
    req = openai_chat.to_canonical_request(body)
    ctx.model = req.model
    pipeline = s.pipeline
    if not req.stream:
        resp, outcome = await pipeline.complete(ctx, req)
        if not resp.created:
            resp = dataclasses.replace(resp, created=int(time.time()))
        payload = openai_chat.from_canonical_response(resp, outcome.model)
        headers = {"Content-Type": "application/json"}
        headers.update(common.outcome_headers(outcome, outcome.model, request_id=ctx.request_id))
        return Reply(headers, common.dumps(payload).encode())

    st = await pipeline.open_stream(ctx, req)
    encoder = openai_chat.StreamEncoder(
        id="chatcmpl-" + ctx.request_id[4:], model=st.prep.entry.model.id,
        created=int(time.time()), include_usage=req.include_usage)
    framer = framing.Framer(encoder)
    headers = {**framer.headers, **common.outcome_headers(None, st.prep.entry.model.id, st.prep,
                                                          request_id=ctx.request_id)}
    return Reply(headers, stream=pipeline.stream_body(st, framer.encode, framer.trailer,
                                                      framer.error_frame))
