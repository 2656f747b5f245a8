"""OpenAI-dialect routes: chat completions and the model list. Decode, dispatch, encode."""
from __future__ import annotations

import dataclasses
import time

from quart import Blueprint, Response

from gateway.codecs import openai_chat, openai_chat_stream
from gateway.http import common, framing, idempotency

bp = Blueprint("openai", __name__)



@bp.post("/v1/chat/completions")
@idempotency.idempotent
async def chat_completions():
    ctx = await common.authenticate("/v1/chat/completions", "openai")
    body = await common.read_json_object()
    req = openai_chat.to_canonical_request(body)
    ctx.model = req.model
    pipeline = common.services().pipeline
    if not req.stream:
        resp, outcome = await pipeline.complete(ctx, req)
        if not resp.created:
            resp = dataclasses.replace(resp, created=int(time.time()))
        payload = openai_chat.from_canonical_response(resp, outcome.model)
        return Response(common.dumps(payload), content_type="application/json",
                        headers=common.outcome_headers(outcome, outcome.model))

    st = await pipeline.open_stream(ctx, req)
    encoder = openai_chat_stream.StreamEncoder(
        id="chatcmpl-" + ctx.request_id[4:], model=st.prep.entry.model.id,
        created=int(time.time()), include_usage=req.include_usage)
    return framing.relay(st, framing.Framer(encoder))
