"""OpenAI-dialect routes: chat completions and the model list. Decode, dispatch, encode."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from quart import Blueprint, Response

from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.codecs import openai_chat, openai_chat_stream
from gateway.codecs.sse import encode_event
from gateway.http import common, idempotency
from gateway.pipeline import CallContext, Outcome

bp = Blueprint("openai", __name__)

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"}


@dataclass
class Reply:
    """A generation's answer before any web framework sees it: the Quart route and the
    lean ASGI path (http/lean.py) both send it."""
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


@bp.post("/v1/chat/completions")
@idempotency.idempotent
async def chat_completions():
    ctx = await common.authenticate("/v1/chat/completions", "openai")
    body = await common.read_json_object()
    reply = await chat(common.services(), ctx, body)
    if reply.stream is not None:
        return Response(reply.stream, headers=reply.headers)
    return Response(reply.body, headers=reply.headers)


async def chat(s: Any, ctx: CallContext, body: dict) -> Reply:
    """Decode, run the pipeline, encode: the whole of a chat completion but the HTTP."""
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
    model = st.prep.selection.entry.model.id
    encoder = openai_chat_stream.StreamEncoder(id="chatcmpl-" + ctx.request_id[4:], model=model,
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
    headers.update(common.outcome_headers(None, model, st.prep, request_id=ctx.request_id))
    return Reply(headers, stream=pipeline.stream_body(st, encode, trailer, error_frame))
