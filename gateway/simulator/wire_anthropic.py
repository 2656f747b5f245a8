"""How the HTTP simulator speaks Anthropic Messages: ``POST /v1/messages``.

The simulator is the server here, so it uses the codec's client-side halves: it decodes
requests as a client's, answers with ``from_canonical_response`` and streams through
the client-facing ``StreamEncoder``. An Anthropic stream ends with message_stop and no
``[DONE]`` line; a cut stream (disconnect_after) therefore lacks message_stop, which is
how the gateway's provider recognises it. The credential is the ``x-api-key`` header.
"""
from __future__ import annotations

from gateway import canonical as c
from gateway import tokenizer
from gateway.codecs import anthropic, sse
from gateway.simulator.wire import WireAdapter, dumps

# Anthropic's error type per HTTP status; anything unlisted falls back by class.
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
                529: "overloaded_error"}


def error_body(status: int, message: str) -> dict:
    kind = _ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class _AnthropicStream:
    def __init__(self, req: c.Request, id: str, created: int) -> None:
        # Anthropic reports the prompt's size up front, in message_start.
        self._enc = anthropic.StreamEncoder(id, req.model, tokenizer.count_request(req))

    def encode(self, ev: c.StreamEvent) -> bytes:
        return _frames(self._enc.encode(ev))

    def end(self) -> bytes:
        return _frames(self._enc.close())


def _frames(frames: list[anthropic.Frame]) -> bytes:
    return b"".join(sse.encode_event(dumps(data), name) for name, data in frames)


ANTHROPIC = WireAdapter(
    name="anthropic",
    decode=lambda path, body: anthropic.to_canonical_request(body),
    encode_response=lambda resp: anthropic.from_canonical_response(resp, resp.model),
    stream_writer=_AnthropicStream,
    error_body=error_body,
    credential=lambda headers, query: headers.get("x-api-key", ""),
)
