"""OpenAI-dialect routes: chat completions and the model list. Decode, dispatch, encode."""
from __future__ import annotations

import dataclasses
import time

from quart import Blueprint, Response

from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.codecs import openai_chat
from gateway.codecs.sse import encode_event
from gateway.http import common, idempotency
from gateway.pipeline import Outcome

bp = Blueprint("openai", __name__)

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"}


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
    model = st.prep.selection.entry.model.id
    encoder = openai_chat.StreamEncoder(id="chatcmpl-" + ctx.request_id[4:], model=model,
                                        created=int(time.time()), include_usage=req.include_usage)

    def encode(ev) -> bytes:
        return b"".join(encode_event(common.dumps(chunk)) for chunk in encoder.encode(ev))

    def trailer(outcome: Outcome) -> bytes:
        # SSE comments are ignored by SDKs but let curl users and the tests read the bill.
        note = (f": prism cost={format_usd(outcome.cost_micros)} tokens_in={outcome.tokens_in} "
                f"tokens_out={outcome.tokens_out} estimated={str(outcome.estimated).lower()}\n\n")
        return note.encode() + b"data: [DONE]\n\n"

    def error_frame(err: errors.PrismError) -> bytes:
        return encode_event(common.dumps(common.error_body(err, "openai")))

    headers = dict(_SSE_HEADERS)
    headers.update(common.outcome_headers(None, model, st.prep))
    return Response(pipeline.stream_body(st, encode, trailer, error_frame), headers=headers)
