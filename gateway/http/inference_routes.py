"""OpenAI-dialect inference routes: embeddings, rerank, token counting, speech,
transcription and translation, web search and OCR. Decode, measure the worst case,
hand the operation to the engine, encode; money, failover and the log are the engine's.

    POST /v1/embeddings            POST /v1/rerank (and /v2/rerank)   POST /v1/count_tokens
    POST /v1/audio/speech          POST /v1/audio/speech/stream
    POST /v1/audio/transcriptions  POST /v1/audio/translations (multipart, size-capped)
    POST /v1/search                POST /v1/ocr

Everything a refusal depends on (capability, price, empty or oversized input, audio
whose length cannot be read, too many documents or pages) is checked before the engine
holds money or calls an upstream.
"""
from __future__ import annotations

import math
from typing import Any, AsyncIterator

import trio
from quart import Blueprint, Response, request

from gateway import canonical_ops as o
from gateway import errors, tokenizer
from gateway.codecs import audio, embeddings, multipart, ocr, rerank, search
from gateway.codecs import openai_chat
from gateway.codecs.sse import encode_event
from gateway.http import common
from gateway.inference import operations as ops
from gateway.documents import probe
from gateway.inference.operations import Call, usable_routes
from gateway.providers.inference import local_count

bp = Blueprint("inference", __name__)

MAX_EMBED_INPUT_TOKENS = 8192
UPLOAD_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"}


def _json(payload: Any, headers: dict[str, str]) -> Response:
    return Response(common.dumps(payload), content_type="application/json", headers=headers)


async def run(ctx, op, call: Call, model: str, capability: str, **check):
    """The engine's unary path with the operation's route check."""
    s = common.services()
    return await s.pipeline.unary(ctx, op, call, model=model, routes=lambda sel: usable_routes(
        call.clients, sel.entry, sel.routes, call.op, capability, **check))


def embed_tokens(req: o.EmbedRequest) -> int:
    total = 0
    for i, x in enumerate(req.inputs):
        n = tokenizer.count_text(x) if isinstance(x, str) else len(x)
        if n > MAX_EMBED_INPUT_TOKENS:
            raise errors.InvalidRequest(f"input[{i}] is {n} tokens; at most {MAX_EMBED_INPUT_TOKENS} "
                                        "are allowed per input", field="input", code="input_too_large")
        total += n
    return total


@bp.post("/v1/embeddings")
async def create_embeddings():
    ctx = await common.authenticate("/v1/embeddings", "openai")
    body = await common.read_json_object()
    req = embeddings.openai_to_canonical(body)
    ctx.model = req.model
    call = Call("embeddings", req, common.services().inference, units=embed_tokens(req))
    done, outcome = await run(ctx, ops.EMBEDDINGS, call, req.model, "embeddings")
    headers = common.outcome_headers(outcome, outcome.model)
    return _json(embeddings.openai_from_canonical(done.value, outcome.model,
                                                  embeddings.encoding_format(body)), headers)


@bp.post("/v1/rerank")
@bp.post("/v2/rerank")    # where Cohere's SDKs post, with base_url at Prism
async def create_rerank():
    ctx = await common.authenticate(request.path, "openai")
    s = common.services()
    req = rerank.to_canonical(await common.read_json_object(), s.config.inference.max_documents)
    ctx.model = req.model
    model = s.catalog.resolve(req.model).model
    if model.search_usd is None and model.input_usd_per_mtok is not None:
        q = tokenizer.count_text(req.query)
        units = sum(q + tokenizer.count_text(d) for d in req.documents)
        op = ops.RERANK_TOKENS
    else:
        units, op = rerank.search_units(len(req.documents)), ops.RERANK
    call = Call("rerank", req, s.inference, units=units)
    done, outcome = await run(ctx, op, call, req.model, "rerank")
    units = done.units if op is ops.RERANK else rerank.search_units(len(req.documents))
    return _json(rerank.from_canonical(o.RerankResult(hits=done.value.hits, search_units=units),
                                       req, ctx.request_id), common.outcome_headers(outcome, outcome.model))


@bp.post("/v1/count_tokens")
async def count_tokens():
    """Free: nothing is held or billed. An upstream with an exact counter (Anthropic's
    count_tokens, Gemini's countTokens) answers when one of the model's routes has
    one; otherwise, or when it fails, the local tokenizer does, and ``exact`` says which."""
    ctx = await common.authenticate("/v1/count_tokens", "openai", log=False)
    body = await common.read_json_object()
    body.pop("stream", None)
    req = openai_chat.to_canonical_request(body)
    s = common.services()
    entry = s.catalog.resolve(req.model)
    if ctx.allowed_models is not None and entry.model.id not in ctx.allowed_models:
        raise errors.PlanRestricted(f"The model {entry.public_id!r} is not in your plan",
                                    code="model_not_in_plan")
    result = await exact_count(s, entry, req)
    return _json({"object": "response.input_tokens", "model": entry.model.id,
                  "input_tokens": result.input_tokens, "exact": result.exact},
                 {"X-Prism-Model": entry.model.id, "X-Prism-Cost": "0"})


async def exact_count(s, entry, req) -> o.CountResult:
    import dataclasses
    for route in s.catalog.routes(entry.model):
        client = s.inference.get(route.provider, "count_tokens")
        if client is None:
            continue
        try:
            with trio.fail_after(s.config.provider(route.provider).connect_timeout + 10):
                return await client.count_tokens(dataclasses.replace(req, model=route.model), route.model)
        except (errors.PrismError, trio.TooSlowError):
            continue   # the local count is always there to fall back on
    return local_count(req)


# ---------------------------------------------------------------- audio

async def _speech(path: str, stream: bool):
    ctx = await common.authenticate(path, "openai")
    req = audio.speech_to_canonical(await common.read_json_object(), stream)
    ctx.model = req.model
    call = Call("speech", req, common.services().inference, units=len(req.input))
    sse = req.stream_format == "sse"
    if not stream and not sse:
        done, outcome = await run(ctx, ops.SPEECH, call, req.model, "speech", speech_format=req.format)
        headers = common.outcome_headers(outcome, outcome.model)
        return Response(done.value.audio, content_type=done.value.media_type, headers=headers)
    done, outcome = await run(ctx, ops.SPEECH_STREAM, call, req.model, "speech", speech_format=req.format)
    st: ops.SpeechStream = done.value
    headers = common.outcome_headers(outcome, outcome.model)

    def frame(chunk: bytes) -> bytes:
        return encode_event(common.dumps(audio.speech_delta(chunk))) if sse else chunk

    async def body() -> AsyncIterator[bytes]:
        try:
            yield frame(st.first)
            async for chunk in st.rest:
                yield frame(chunk)
            if sse:
                yield encode_event(common.dumps(audio.speech_done(len(req.input))))
        finally:
            with trio.CancelScope(shield=True):
                await st.rest.aclose()

    if sse:
        return Response(body(), headers={**_SSE_HEADERS, **headers})
    return Response(body(), content_type=o.SPEECH_MIME[req.format], headers=headers)


@bp.post("/v1/audio/speech")
async def speech():
    return await _speech("/v1/audio/speech", stream=False)


@bp.post("/v1/audio/speech/stream")
async def speech_stream():
    return await _speech("/v1/audio/speech/stream", stream=True)


async def _upload(path: str, translate: bool):
    ctx = await common.authenticate(path, "openai")
    s = common.services()
    cap = s.config.inference.upload_max_bytes
    raw = await request.get_data(cache=False)
    form = multipart.parse(request.headers.get("content-type", ""), raw, cap + 64 * 1024)
    if "file" in form.files and len(form.files["file"].data) > cap:
        raise errors.BodyTooLarge(f"file: the upload is over the {cap} byte limit")
    req = audio.transcription_to_canonical(form, translate)
    ctx.model = req.model
    seconds = probe.audio_seconds(req.audio, req.filename)
    call = Call("transcription", req, s.inference, units=max(1, math.ceil(seconds * 1000)), duration=seconds)
    done, outcome = await run(ctx, ops.TRANSCRIPTION, call, req.model, "transcription")
    res: o.TranscriptionResult = done.value
    headers = common.outcome_headers(outcome, outcome.model)
    headers["X-Prism-Audio-Seconds"] = f"{seconds:.3f}"
    if req.stream:
        async def events() -> AsyncIterator[bytes]:
            words = res.text.split(" ")
            for i, w in enumerate(words):
                yield encode_event(common.dumps(audio.transcript_delta(w if i == 0 else " " + w)))
            yield encode_event(common.dumps(audio.transcript_done(res)))
        return Response(events(), headers={**_SSE_HEADERS, **headers})
    data, ctype = audio.transcript_body(res, req)
    return Response(data, content_type=ctype, headers=headers)


@bp.post("/v1/audio/transcriptions")
async def transcriptions():
    return await _upload("/v1/audio/transcriptions", translate=False)


@bp.post("/v1/audio/translations")
async def translations():
    return await _upload("/v1/audio/translations", translate=True)


# ---------------------------------------------------------------- search and OCR

@bp.post("/v1/search")
async def web_search():
    ctx = await common.authenticate("/v1/search", "openai")
    req = search.to_canonical(await common.read_json_object())
    s = common.services()
    model = req.model or default_model(s, "search")
    ctx.model = model
    call = Call("search", req, s.inference)
    done, outcome = await run(ctx, ops.SEARCH, call, model, "search")
    return _json(search.from_canonical(done.value, ctx.request_id), common.outcome_headers(outcome, outcome.model))


def default_model(s, capability: str) -> str:
    for m in s.config.models:
        if m.enabled and capability in m.capabilities:
            return m.id
    raise errors.InvalidRequest(f"model is required: no model here has the {capability!r} capability",
                                field="model")


@bp.post("/v1/ocr")
async def ocr_process():
    ctx = await common.authenticate("/v1/ocr", "openai")
    s = common.services()
    req = ocr.to_canonical(await common.read_json_object(), s.config.inference.upload_max_bytes)
    ctx.model = req.model
    req = await fetch_document(s, req)
    pages = count_pages(req, s.config.inference.ocr_max_pages)
    call = Call("ocr", req, s.inference, units=pages)
    done, outcome = await run(ctx, ops.OCR, call, req.model, "ocr")
    return _json(ocr.from_canonical(done.value, outcome.model), common.outcome_headers(outcome, outcome.model))


async def fetch_document(s, req: o.OcrRequest) -> o.OcrRequest:
    """A URL document is fetched through the SSRF guard: the page count (what is held)
    comes from the bytes, and every route then reads the same document."""
    import dataclasses
    from gateway.media import fetch
    if req.data is not None:
        return req
    cfg = s.config.media
    got = await fetch.fetch(req.url, allow_private=cfg.allow_private_hosts,
                            max_bytes=s.config.inference.upload_max_bytes, timeout=cfg.fetch_timeout,
                            max_redirects=cfg.fetch_max_redirects)
    return dataclasses.replace(req, url=None, data=got.content, media_type=got.content_type)


def count_pages(req: o.OcrRequest, max_pages: int) -> int:
    assert req.data is not None
    if probe.is_pdf(req.data):
        n = probe.pdf_page_count(req.data)
        wanted = [p for p in req.pages if p < n] if req.pages is not None else range(n)
        if req.pages is not None and not wanted:
            raise errors.InvalidRequest(f"pages: the document has {n} pages (indexes from 0)", field="pages")
        count = len(wanted)
    else:
        if req.pages is not None and 0 not in req.pages:
            raise errors.InvalidRequest("pages: an image document has one page, index 0", field="pages")
        count = 1
    if count > max_pages:
        raise errors.InvalidRequest(f"document: {count} pages; at most {max_pages} are processed per request",
                                    field="document", code="too_many_pages")
    if count == 0:
        raise errors.InvalidRequest("document: has no pages", field="document")
    return count
