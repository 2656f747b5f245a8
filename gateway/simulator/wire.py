"""How the HTTP simulator speaks one wire dialect: the adapter each dialect supplies.

The server owns routing, faults, timing and disconnects; an adapter only says how its
dialect's bodies, stream framing, errors and credentials look. Adapters use their
codec's *client-side* functions (to_canonical_request, from_canonical_response, the
stream encoder), because to the gateway's provider the simulator is the server.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from gateway import canonical as c
from gateway.codecs import openai_chat, sse


class StreamWriter(Protocol):
    def encode(self, ev: c.StreamEvent) -> bytes: ...

    def end(self) -> bytes: ...


@dataclass(frozen=True)
class WireAdapter:
    name: str
    # (path, body) -> canonical Request; raises errors.InvalidRequest. The path carries
    # the model and the stream flag for dialects that put them there (Gemini).
    decode: Callable[[str, object], c.Request]
    encode_response: Callable[[c.Response], dict]
    stream_writer: Callable[[c.Request, str, int], StreamWriter]   # (req, id, created)
    error_body: Callable[[int, str], dict]
    # The credential the client sent, or "" (each dialect has its own header).
    credential: Callable[[dict[str, str], str], str]                # (headers, query string)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def read_body(receive: Any, cap: int) -> bytes | None:
    """The whole request body, or None if the client left or sent more than cap bytes."""
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not msg.get("more_body", False):
            return b"".join(chunks)


def bearer(headers: dict[str, str], _query: str = "") -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# ---------------------------------------------------------------- OpenAI chat

def openai_error(status: int, message: str) -> dict:
    if status == 401:
        kind, code = "invalid_request_error", "invalid_api_key"
    elif status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _OpenAIStream:
    def __init__(self, req: c.Request, id: str, created: int) -> None:
        self._enc = openai_chat.StreamEncoder(id, req.model, created, req.include_usage)

    def encode(self, ev: c.StreamEvent) -> bytes:
        return b"".join(sse.encode_event(dumps(ch)) for ch in self._enc.encode(ev))

    def end(self) -> bytes:
        return b"data: [DONE]\n\n"


OPENAI = WireAdapter(
    name="openai",
    decode=lambda path, body: openai_chat.to_canonical_request(body),
    encode_response=lambda resp: openai_chat.from_canonical_response(resp, resp.model),
    stream_writer=_OpenAIStream,
    error_body=openai_error,
    credential=bearer,
)


def adapter_for(path: str) -> WireAdapter | None:
    """Which dialect a POST path belongs to (None: not a generation route)."""
    if path in ("/v1/chat/completions", "/chat/completions"):
        return OPENAI
    # Imported here: those adapters build on this module's WireAdapter.
    if path in ("/v1/responses", "/responses"):
        from gateway.simulator.wire_responses import RESPONSES
        return RESPONSES
    if path in ("/v1/messages", "/messages"):
        from gateway.simulator.wire_anthropic import ANTHROPIC
        return ANTHROPIC
    if ":generateContent" in path or ":streamGenerateContent" in path:
        from gateway.simulator.wire_gemini import GEMINI
        return GEMINI
    return None
