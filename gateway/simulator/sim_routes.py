"""The HTTP simulator's inference routes, each in its upstream's own wire format:

    POST /v1/embeddings                          OpenAI
    POST /v1beta/models/{m}:embedContent | :batchEmbedContents | :countTokens   Gemini
    POST /v1beta/models/{m}:generateContent      Gemini audio only: speech (AUDIO
                                                 responseModalities) and transcription
                                                 (inline audio); anything else is chat's
    POST /v1/messages/count_tokens               Anthropic
    POST /v1/audio/speech | /transcriptions | /translations   OpenAI (multipart uploads)
    POST /v2/rerank (and /v1/rerank)             Cohere
    GET  /search?q=&format=json                  SearXNG
    POST /search                                 Tavily
    POST /v1/ocr                                 Mistral

Faults: the directive of faults.py inside the text (embedding input, rerank query,
speech input, search query, the transcribed or OCR'd text) fails the call, and any path
under ``/_sim/fail/{status}/`` answers that status: a dead route for failover tests.
Answers come from sim_inference / sim_audio and are encoded with the same codecs the
gateway uses, whose client-side halves are exactly the upstream's server side.
"""
from __future__ import annotations

import base64
import json
import re
from typing import Any

from gateway import canonical as c
from gateway import canonical_ops as o
from gateway import errors, tokenizer
from gateway.codecs import audio, embeddings, multipart, ocr, rerank, search
import gateway.simulator.sim_audio as sim_audio
import gateway.simulator.sim_inference as sim_inference
from gateway.simulator.faults import parse_fault
from gateway.simulator.wire import read_body

MAX_BODY = 64 * 1024 * 1024
_GEMINI = re.compile(r"/v1(?:beta)?/models/([^/:]+):(embedContent|batchEmbedContents|countTokens|generateContent)")


def fault_status(*texts: str) -> int | None:
    for t in texts:
        f = parse_fault(c.Request(model="", messages=(c.Message("user", (c.TextPart(t),)),)))
        if f.status is not None and f.status >= 400:
            return f.status
    return None


class InferenceSim:
    """Counters per route (read through /_sim/stats as ``inference``)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def reset(self) -> None:
        self.calls = {}

    async def handle(self, scope: dict, receive: Any, send: Any, headers: dict[str, str]) -> bool | bytes:
        """True: served. False: not ours. bytes: a generateContent body that is chat's
        after all (already read, so the caller must not read it again)."""
        path, method = scope["path"], scope["method"]
        m = re.fullmatch(r"/_sim/fail/(\d{3})(/.*)", path)
        if m:
            await _reply(send, int(m.group(1)), {"error": {"message": "simulated dead route",
                                                           "type": "server_error"}})
            return True
        if path == "/_sim/page.png" and method == "GET":
            # A page image carrying ?text= (the OCR tests fetch documents by URL here).
            from urllib.parse import parse_qs
            from gateway.simulator.sim_ocr import png, render
            text = parse_qs(scope.get("query_string", b"").decode()).get("text", [""])[0]
            await _send(send, 200, png(render(text)), b"image/png")
            return True
        gm = _GEMINI.fullmatch(path)
        route = None
        if gm:
            route = "gemini:" + gm.group(2)
        elif path in ("/v1/embeddings", "/embeddings"):
            route = "openai:embeddings"
        elif path in ("/v1/messages/count_tokens", "/messages/count_tokens"):
            route = "anthropic:count_tokens"
        elif path.removeprefix("/v1") in ("/audio/speech", "/audio/transcriptions", "/audio/translations"):
            route = "openai:" + path.rsplit("/", 1)[1]
        elif path in ("/v2/rerank", "/v1/rerank", "/rerank"):
            route = "cohere:rerank"
        elif path == "/search":
            route = "searxng:search" if method == "GET" else "tavily:search"
        elif path in ("/v1/ocr", "/ocr"):
            route = "mistral:ocr"
        if route is None:
            return False
        if not (headers.get("authorization") or headers.get("x-goog-api-key") or headers.get("x-api-key")
                or route == "searxng:search"):
            await _reply(send, 401, {"error": {"message": "missing credentials", "type": "auth"}})
            return True
        raw = b"" if method == "GET" else await read_body(receive, MAX_BODY)
        if raw is None:
            await _reply(send, 413, {"error": {"message": "body too large"}})
            return True
        if route == "gemini:generateContent":
            body = _json(raw)
            if not _is_gemini_audio(body):
                return raw
        self.calls[route] = self.calls.get(route, 0) + 1
        try:
            await self._serve(route, gm.group(1) if gm else "", scope, raw, headers, send)
        except errors.PrismError as exc:
            status = exc.status if exc.status < 500 else 502
            await _reply(send, status, _error(route, status, exc.message))
        return True

    async def _serve(self, route: str, model: str, scope: dict, raw: bytes,
                     headers: dict[str, str], send: Any) -> None:
        if route == "searxng:search":
            qs = dict(p.partition("=")[::2] for p in scope.get("query_string", b"").decode().split("&") if p)
            from urllib.parse import unquote_plus
            q = unquote_plus(qs.get("q", ""))
            if (st := fault_status(q)) is not None:
                return await _reply(send, st, _error(route, st, "simulated search failure"))
            sites = tuple(re.findall(r"\bsite:(\S+)", q))
            q = re.sub(r"\s*\bsite:\S+", "", q)
            await _reply(send, 200, {"query": q, "results": sim_inference.search(q, 10, sites)})
            return
        if route.startswith("openai:trans"):
            form = multipart.parse(headers.get("content-type", ""), raw, MAX_BODY)
            req = audio.transcription_to_canonical(form, route.endswith("translations"))
            text = sim_audio.transcribe(req.audio)
            if (st := fault_status(text)) is not None:
                return await _reply(send, st, _error(route, st, "simulated transcription failure"))
            res = transcript(text, req.audio)
            body, ctype = audio.transcript_body(res, _verbose(req))
            await _send(send, 200, body, ctype.encode())
            return
        body = _json(raw)
        if route == "openai:embeddings":
            req = embeddings.openai_to_canonical(body)
            texts = tuple(x if isinstance(x, str) else _detok(x) for x in req.inputs)
            if (st := fault_status(*texts)) is not None:
                return await _reply(send, st, _error(route, st, "simulated embeddings failure"))
            await _reply(send, 200, embeddings.openai_from_canonical(embed(texts, req.dimensions),
                                                                     req.model, embeddings.encoding_format(body)))
        elif route in ("gemini:embedContent", "gemini:batchEmbedContents"):
            req = embeddings.gemini_to_canonical(model, body, route.endswith("batchEmbedContents"))
            if (st := fault_status(*req.inputs)) is not None:
                return await _reply(send, st, _error(route, st, "simulated embeddings failure"))
            await _reply(send, 200, embeddings.gemini_from_canonical(
                embed(req.inputs, req.dimensions), route.endswith("batchEmbedContents")))
        elif route == "gemini:countTokens":
            await _reply(send, 200, {"totalTokens": tokenizer.count_text(json.dumps(body.get(
                "contents", body.get("generateContentRequest", {})), ensure_ascii=False))})
        elif route == "anthropic:count_tokens":
            await _reply(send, 200, {"input_tokens": tokenizer.count_text(json.dumps(
                [body.get("system"), body.get("messages"), body.get("tools")], ensure_ascii=False))})
        elif route == "gemini:generateContent":
            await self._gemini_audio(body, route, send)
        elif route == "openai:speech":
            req = audio.speech_to_canonical(body)
            if (st := fault_status(req.input)) is not None:
                return await _reply(send, st, _error(route, st, "simulated speech failure"))
            data = sim_audio.speech(req.input, req.format, req.speed)
            if data is None:
                return await _reply(send, 400, _error(route, 400, f"simulator cannot make {req.format}"))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", o.SPEECH_MIME[req.format].encode())]})
            for i in range(0, len(data), 16384):   # chunked, as a real TTS streams
                await send({"type": "http.response.body", "body": data[i:i + 16384], "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        elif route == "cohere:rerank":
            req = rerank.to_canonical(body)
            if (st := fault_status(req.query)) is not None:
                return await _reply(send, st, _error(route, st, "simulated rerank failure"))
            res = o.RerankResult(hits=sim_inference.rerank(req.query, req.documents),
                                 search_units=rerank.search_units(len(req.documents)))
            await _reply(send, 200, rerank.from_canonical(res, req, "rerank-sim"))
        elif route == "tavily:search":
            q = body.get("query") if isinstance(body, dict) else None
            if not isinstance(q, str) or not q:
                raise errors.InvalidRequest("query is required")
            if (st := fault_status(q)) is not None:
                return await _reply(send, st, _error(route, st, "simulated search failure"))
            n = body.get("max_results", 5)
            items = sim_inference.search(q, n if isinstance(n, int) and 0 < n <= 20 else 5,
                                         tuple(body.get("include_domains") or ()))
            await _reply(send, 200, {"query": q, "results": [
                {"title": i["title"], "url": i["url"], "content": i["content"], "score": 0.9,
                 "published_date": i["publishedDate"]} for i in items]})
        elif route == "mistral:ocr":
            req = ocr.to_canonical(body, MAX_BODY)
            if req.data is None:
                raise errors.InvalidRequest("the simulator reads data: URLs only")
            pages = sim_inference.ocr_pages(req.data, req.pages)
            if (st := fault_status(*(p.markdown for p in pages))) is not None:
                return await _reply(send, st, _error(route, st, "simulated OCR failure"))
            await _reply(send, 200, ocr.from_canonical(o.OcrResult(tuple(pages), doc_size_bytes=len(req.data)),
                                                       req.model))

    async def _gemini_audio(self, body: dict, route: str, send: Any) -> None:
        parts = [p for ct in body.get("contents") or () if isinstance(ct, dict)
                 for p in ct.get("parts") or () if isinstance(p, dict)]
        text = " ".join(p["text"] for p in parts if isinstance(p.get("text"), str))
        blobs = [p.get("inlineData") or p.get("inline_data") for p in parts]
        blobs = [b for b in blobs if isinstance(b, dict) and str(b.get("mimeType", "")).startswith("audio/")]
        if blobs:
            heard = sim_audio.transcribe(base64.b64decode(blobs[0].get("data", "")))
            if (st := fault_status(heard)) is not None:
                return await _reply(send, st, _error(route, st, "simulated transcription failure"))
            out = {"text": heard}
        else:
            if (st := fault_status(text)) is not None:
                return await _reply(send, st, _error(route, st, "simulated speech failure"))
            out = {"inlineData": {"mimeType": f"audio/L16;codec=pcm;rate={sim_audio.PCM_RATE}",
                                  "data": base64.b64encode(sim_audio.pcm(text)).decode()}}
        n_in = tokenizer.count_text(text)
        await _reply(send, 200, {"candidates": [{"content": {"role": "model", "parts": [out]},
                                                 "finishReason": "STOP", "index": 0}],
                                 "usageMetadata": {"promptTokenCount": n_in, "candidatesTokenCount": 0,
                                                   "totalTokenCount": n_in}})


def _is_gemini_audio(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    gc = body.get("generationConfig") or {}
    if isinstance(gc, dict) and ("speechConfig" in gc or "AUDIO" in (gc.get("responseModalities") or ())):
        return True
    return any(isinstance(p, dict) and isinstance(p.get("inlineData"), dict)
               and str(p["inlineData"].get("mimeType", "")).startswith("audio/")
               for ct in body.get("contents") or () if isinstance(ct, dict)
               for p in ct.get("parts") or ())


def embed(texts: tuple[str, ...], dims: int | None) -> o.EmbedResult:
    return o.EmbedResult(vectors=tuple(sim_inference.embed(t, dims or sim_inference.DEFAULT_DIMS) for t in texts),
                         input_tokens=sum(tokenizer.count_text(t) for t in texts))


def transcript(text: str, data: bytes) -> o.TranscriptionResult:
    from gateway.documents.probe import audio_seconds
    try:
        duration = audio_seconds(data)
    except errors.InvalidRequest:
        duration = sim_audio.speech_seconds(text)
    segs, words = sim_audio.segments(text, duration)
    return o.TranscriptionResult(text=text, duration=duration,
                                 segments=tuple(o.Segment(*s) for s in segs),
                                 words=tuple(o.Word(*w) for w in words))


def _verbose(req: o.TranscriptionRequest) -> o.TranscriptionRequest:
    from dataclasses import replace
    return replace(req, response_format="verbose_json")


def _detok(tokens: tuple[int, ...]) -> str:
    return tokenizer.decode(list(tokens))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise errors.InvalidRequest("body is not JSON") from None


def _error(route: str, status: int, message: str) -> dict:
    if route.startswith("gemini:"):
        return {"error": {"code": status, "message": message, "status": "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"}}
    return {"error": {"message": message, "type": "server_error" if status >= 500 else "invalid_request_error"}}


async def _send(send: Any, status: int, body: bytes, ctype: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _reply(send: Any, status: int, value: Any) -> None:
    await _send(send, status, json.dumps(value, ensure_ascii=False).encode(), b"application/json")
