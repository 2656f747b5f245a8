"""Anthropic-dialect routes: Messages (plain and SSE) and count_tokens. Decode, dispatch, encode.

Keys arrive as ``x-api-key`` (what Anthropic's SDKs send) or ``Authorization: Bearer``;
``anthropic-version`` and ``anthropic-beta`` are accepted and ignored, since the gateway
speaks one fixed version of the wire format. Errors render as
``{"type": "error", "error": {"type", "message"}}`` through the app's one handler.

``/v1/messages/count_tokens`` answers ``{"input_tokens": N}`` counted with the gateway's
own tokenizer (o200k_base plus OpenAI's per-message framing): exact for OpenAI models,
an estimate for every other one, Claude included. It is free and leaves no log row.
"""
from __future__ import annotations

import dataclasses

import trio
from quart import Blueprint, Response, g, request

from gateway import canonical as c
from gateway import tokenizer
from gateway.codecs import anthropic
from gateway.http import common, framing, jobs_routes

bp = Blueprint("anthropic", __name__)

# Same threshold as the pipeline: long prompts are counted off the event loop.
_THREAD_COUNT_CHARS = 200_000


@bp.post("/v1/messages")
async def messages():
    g.dialect = "anthropic"
    ctx = await common.authenticate("/v1/messages", "anthropic", "x-api-key")
    body = await common.read_json_object()
    if jobs_routes.wants_async(body, request.headers.get("x-prism-async")):
        return await jobs_routes.queue_response(ctx, "/v1/messages", body)
    req = anthropic.to_canonical_request(body)
    ctx.model = req.model
    pipeline = common.services().pipeline
    # The gateway's own id, so a client's message id matches X-Request-Id.
    message_id = "msg_" + ctx.request_id[4:]
    if not req.stream:
        resp, outcome = await pipeline.complete(ctx, req)
        usage = resp.usage or c.Usage(outcome.tokens_in, outcome.tokens_out,
                                      estimated=outcome.estimated)
        resp = dataclasses.replace(resp, id=message_id, usage=usage)
        payload = anthropic.from_canonical_response(resp, outcome.model)
        return Response(common.dumps(payload), content_type="application/json",
                        headers=common.outcome_headers(outcome, outcome.model))

    st = await pipeline.open_stream(ctx, req)
    encoder = anthropic.StreamEncoder(message_id, st.prep.entry.model.id,
                                             st.prep.prompt_tokens)
    return framing.relay(st, framing.AnthropicFramer(encoder))


@bp.post("/v1/messages/count_tokens")
async def count_tokens():
    g.dialect = "anthropic"
    await common.authenticate("/v1/messages/count_tokens", "anthropic", "x-api-key", log=False)
    body = await common.read_json_object()
    req = anthropic.to_canonical_request(body, require_max_tokens=False)
    common.services().catalog.resolve(req.model)   # an unknown model is a 404, as upstream
    size = sum(len(p.text) for m in req.messages for p in m.parts if isinstance(p, c.TextPart))
    if size > _THREAD_COUNT_CHARS:
        n = await trio.to_thread.run_sync(tokenizer.count_request, req)
    else:
        n = tokenizer.count_request(req)
    return Response(common.dumps({"input_tokens": n}), content_type="application/json")
