"""How the HTTP simulator speaks Gemini generateContent (the adapter simulator/wire.py
routes ``:generateContent`` and ``:streamGenerateContent`` paths to).

The model and the stream flag come from the path (``/v1beta/models/{m}:method``); the
``alt=sse`` query is implied, since streams here are always SSE. The credential is the
``x-goog-api-key`` header or the ``key`` query parameter, as Google accepts both.
"""
from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, unquote

from gateway import canonical as c
from gateway.codecs import gemini, sse
from gateway.simulator.wire import WireAdapter, dumps

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
           499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def _model(path: str) -> str:
    tail = path.rsplit("/models/", 1)[-1]
    return unquote(tail.split(":", 1)[0])


def _decode(path: str, body: object) -> c.Request:
    # The gateway's client-side Gemini codec refuses image output (it answers text only),
    # but as an upstream the simulator makes images: take responseModalities off here
    # and carry it as the canonical hint.
    modalities = None
    if isinstance(body, dict) and isinstance(body.get("generationConfig"), dict):
        gen = dict(body["generationConfig"])
        modalities = gen.pop("responseModalities", None)
        body = {**body, "generationConfig": gen}
    req = gemini.to_canonical_request(body, model=_model(path),
                                      stream=":streamGenerateContent" in path)
    if isinstance(modalities, list) and all(isinstance(m, str) for m in modalities):
        req = replace(req, metadata={**req.metadata, "response_modalities": list(modalities)})
    return req


def _error(status: int, message: str) -> dict:
    default = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, default)}}


def _credential(headers: dict[str, str], query: str) -> str:
    return headers.get("x-goog-api-key") or parse_qs(query).get("key", [""])[0]


class _GeminiStream:
    def __init__(self, req: c.Request, id: str, created: int) -> None:
        self._enc = gemini.StreamEncoder(id, req.model)

    def encode(self, ev: c.StreamEvent) -> bytes:
        return b"".join(sse.encode_event(dumps(ch)) for ch in self._enc.encode(ev))

    def end(self) -> bytes:
        # Gemini has no [DONE] line: the last chunk is the one with finishReason.
        return b"".join(sse.encode_event(dumps(ch)) for ch in self._enc.end())


GEMINI = WireAdapter(
    name="gemini",
    decode=_decode,
    encode_response=lambda resp: gemini.from_canonical_response(resp, resp.model),
    stream_writer=_GeminiStream,
    error_body=_error,
    credential=_credential,
)
