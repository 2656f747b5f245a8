"""Messages responses: upstream bodies -> canonical, canonical -> client bodies, and the
block, usage and stop-reason helpers the stream codec shares."""
from __future__ import annotations

from typing import NoReturn

from gateway.canonical import (
    FinishReason, Message, Part, Response, TextPart, ThinkingPart, ToolCallPart, Usage,
)
from gateway.codecs.fields import is_int as _is_int
from gateway.codecs.anthropic.request import REDACTED_PREFIX, args_object, args_text
from gateway.errors import UpstreamError, UpstreamProtocolError

FINISH_IN: dict[str, FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
# Anthropic has no "error" stop reason; a failed generation is the http layer's to report.
FINISH_OUT: dict[str, str] = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
    "content_filter": "refusal", "error": "end_turn",
}

def _proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Anthropic Messages {problem}")


def raise_if_error(body: dict) -> None:
    """An ``{"type": "error"}`` body (or stream event) is the upstream failing us."""
    if body.get("type") != "error":
        return
    err = body.get("error")
    kind = err.get("type") if isinstance(err, dict) else None
    msg = err.get("message") if isinstance(err, dict) else None
    raise UpstreamError(f"upstream reported an error: {kind if isinstance(kind, str) else 'error'}: "
                        f"{msg if isinstance(msg, str) else 'no message'}")


def count(d: dict, key: str, where: str, required: bool) -> int:
    v = d.get(key)
    if v is None and not required:
        return 0
    if not _is_int(v) or v < 0:
        _proto(f"{where}.{key} must be a non-negative integer")
    return v


def usage_in(u: object, *, output_required: bool = True) -> Usage:
    if not isinstance(u, dict):
        _proto("usage must be an object")
    fresh = count(u, "input_tokens", "usage", True)
    read = count(u, "cache_read_input_tokens", "usage", False)
    written = count(u, "cache_creation_input_tokens", "usage", False)
    return Usage(input_tokens=fresh + read + written, cached_input_tokens=read,
                 output_tokens=count(u, "output_tokens", "usage", output_required))


def usage_out(u: Usage) -> dict:
    cached = min(u.cached_input_tokens, u.input_tokens)
    return {"input_tokens": u.input_tokens - cached, "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def finish_in(v: object) -> FinishReason:
    # Null comes from a message cut short; an unknown reason from a newer API version.
    # Neither is worth failing a finished generation over.
    if v is not None and not isinstance(v, str):
        _proto("stop_reason must be a string or null")
    return FINISH_IN.get(v, "stop") if v is not None else "stop"


def response_block(b: object, where: str) -> Part | None:
    """One upstream content block; None for block types we do not carry (server tools)."""
    if not isinstance(b, dict):
        _proto(f"{where} must be an object")
    kind = b.get("type")
    if kind == "text":
        text = b.get("text")
        if not isinstance(text, str):
            _proto(f"{where}.text must be a string")
        return TextPart(text)
    if kind == "thinking":
        text, sig = b.get("thinking"), b.get("signature")
        if not isinstance(text, str) or (sig is not None and not isinstance(sig, str)):
            _proto(f"{where} thinking and signature must be strings")
        return ThinkingPart(text, sig or None)
    if kind == "redacted_thinking":
        data = b.get("data")
        if not isinstance(data, str):
            _proto(f"{where}.data must be a string")
        return ThinkingPart("", REDACTED_PREFIX + data)
    if kind == "tool_use":
        call_id, name, args = b.get("id"), b.get("name"), b.get("input")
        if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name
                and isinstance(args, dict)):
            _proto(f"{where} needs a string id and name and an object input")
        return ToolCallPart(call_id, name, args_text(args))
    if not isinstance(kind, str):
        _proto(f"{where}.type must be a string")
    return None


def to_canonical_response(body: object) -> Response:
    """Decode an upstream's non-streamed Messages response."""
    if not isinstance(body, dict):
        _proto("response is not a JSON object")
    raise_if_error(body)
    rid, model, content = body.get("id"), body.get("model"), body.get("content")
    if not isinstance(rid, str) or not isinstance(model, str):
        _proto("response id and model must be strings")
    if not isinstance(content, list):
        _proto("response content must be an array")
    parts = [p for i, b in enumerate(content) if (p := response_block(b, f"content[{i}]")) is not None]
    usage = body.get("usage")
    return Response(id=rid, model=model, message=Message("assistant", tuple(parts)),
                    finish_reason=finish_in(body.get("stop_reason")),
                    usage=None if usage is None else usage_in(usage))


def encode_block(p: Part) -> dict | None:
    """A response content block for a client; None for parts a response cannot hold."""
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if isinstance(p, ThinkingPart):
        if p.signature is not None and p.signature.startswith(REDACTED_PREFIX) and not p.text:
            return {"type": "redacted_thinking", "data": p.signature[len(REDACTED_PREFIX):]}
        return {"type": "thinking", "thinking": p.text, "signature": p.signature or ""}
    if isinstance(p, ToolCallPart):
        return {"type": "tool_use", "id": p.id, "name": p.name, "input": args_object(p.arguments)}
    return None


def from_canonical_response(resp: Response, model: str) -> dict:
    """Encode a client's Messages response; ``model`` is the public id."""
    return {
        "id": resp.id, "type": "message", "role": "assistant", "model": model,
        "content": [b for p in resp.message.parts if (b := encode_block(p)) is not None],
        "stop_reason": FINISH_OUT[resp.finish_reason], "stop_sequence": None,
        "usage": usage_out(resp.usage or Usage()),
    }
