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
from quart import Blueprint, Response, g

from gateway import canonical as c
from gateway import errors, tokenizer
from gateway.billing.pricing import format_usd
from gateway.codecs import anthropic
from gateway.codecs.sse import encode_event
from gateway.http import common
from gateway.pipeline import Outcome

bp = Blueprint("anthropic", __name__)

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"}
# Same threshold as the pipeline: long prompts are counted off the event loop.
_THREAD_COUNT_CHARS = 200_000


def _frames(frames: list[anthropic.Frame]) -> bytes:
    return b"".join(encode_event(common.dumps(data), name) for name, data in frames)


@bp.post("/v1/messages")
async def messages():
    g.dialect = "anthropic"
    ctx = await common.authenticate("/v1/messages", "anthropic", "x-api-key")
    body = await common.read_json_object()
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
    model = st.prep.entry.model.id
    encoder = anthropic.StreamEncoder(message_id, model, st.prep.prompt_tokens)

    def encode(ev: c.StreamEvent) -> bytes:
        return _frames(encoder.encode(ev))

    def trailer(outcome: Outcome) -> bytes:
        # An SSE comment: SDKs skip it, curl users and the tests read the bill. It goes
        # before the closing events so message_stop stays the last thing on the wire.
        note = (f": prism cost={format_usd(outcome.cost_micros)} tokens_in={outcome.tokens_in} "
                f"tokens_out={outcome.tokens_out} estimated={str(outcome.estimated).lower()}\n\n")
        billed = c.Usage(outcome.tokens_in, outcome.tokens_out, estimated=outcome.estimated)
        return note.encode() + _frames(encoder.close(billed))

    def error_frame(err: errors.PrismError) -> bytes:
        return encode_event(common.dumps(common.error_body(err, "anthropic")), "error")

    headers = dict(_SSE_HEADERS)
    headers.update(common.outcome_headers(None, model))
    return Response(pipeline.stream_body(st, encode, trailer, error_frame), headers=headers)


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
