"""Chat Completions responses: upstream bodies -> canonical, canonical -> client bodies."""
from __future__ import annotations

import json
from typing import Any, NoReturn

from gateway.canonical import (
    FinishReason, Message, Part, Response, TextPart, ThinkingPart, ToolCallPart, Usage,
)
from gateway.codecs.fields import is_int as _is_int
from gateway.errors import UpstreamError, UpstreamProtocolError

# Upstream finish reasons, including aliases some OpenAI-compatible servers emit.
FINISH_IN: dict[str, FinishReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter", "function_call": "tool_calls", "error": "error",
    "eos": "stop", "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
}
# OpenAI has no "error" finish reason and its SDK rejects unknown ones; reporting a
# failed generation to the client is the http layer's job, not the finish field's.
FINISH_OUT: dict[str, str] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter", "error": "stop",
}

def proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Chat Completions {problem}")


def raise_embedded_error(body: dict) -> None:
    # Some servers report failures as a 200 body (or a stream chunk) with "error".
    err = body.get("error")
    if err is not None:
        msg = err.get("message") if isinstance(err, dict) else err
        raise UpstreamError(f"upstream reported an error: {msg if isinstance(msg, str) else 'unknown'}")


def response_head(body: dict) -> tuple[str, str, int]:
    rid, model, created = body.get("id", ""), body.get("model", ""), body.get("created", 0)
    if not isinstance(rid, str) or not isinstance(model, str) or not _is_int(created):
        proto("id and model must be strings and created an integer")
    return rid, model, created


def finish_in(v: object, has_calls: bool) -> FinishReason:
    # Null comes from servers that leave it unset on a complete answer; "stop" beside
    # tool calls from Gemini's and Ollama's compatibility layers. Agent loops wait for
    # "tool_calls", so a natural stop that produced calls is reported as one.
    if v is not None and (not isinstance(v, str) or v not in FINISH_IN):
        proto(f"finish_reason {v!r} is not one we know")
    reason = FINISH_IN[v] if v is not None else "stop"
    return "tool_calls" if reason == "stop" and has_calls else reason


def count(d: dict, key: str, where: str, required: bool) -> int:
    v = d.get(key)
    if v is None and not required:
        return 0
    if not _is_int(v) or v < 0:
        proto(f"{where}.{key} must be a non-negative integer")
    return v


def usage_in(u: object) -> Usage:
    if not isinstance(u, dict):
        proto("usage must be an object")
    pd, cd = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    if not isinstance(pd, dict) or not isinstance(cd, dict):
        proto("usage details must be objects")
    return Usage(
        input_tokens=count(u, "prompt_tokens", "usage", True),
        output_tokens=count(u, "completion_tokens", "usage", True),
        cached_input_tokens=count(pd, "cached_tokens", "usage.prompt_tokens_details", False),
        reasoning_tokens=count(cd, "reasoning_tokens", "usage.completion_tokens_details", False),
    )


def usage_out(u: Usage) -> dict:
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}}


def reasoning(d: dict, where: str) -> str:
    # DeepSeek and vLLM say reasoning_content, OpenRouter and newer vLLM say reasoning.
    for key in ("reasoning_content", "reasoning"):
        v = d.get(key)
        if v is not None and not isinstance(v, str):
            proto(f"{where}.{key} must be a string")
        if v:
            return v
    return ""


def opt_text(d: dict, key: str, where: str) -> str:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        proto(f"{where}.{key} must be a string or null")
    return v or ""


def to_canonical_response(body: object) -> Response:
    """Decode an upstream's non-streamed Chat Completions response."""
    if not isinstance(body, dict):
        proto("response is not a JSON object")
    raise_embedded_error(body)
    rid, model, created = response_head(body)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        proto("response has no choices")
    choice = choices[0]
    msg = choice.get("message")
    if not isinstance(msg, dict):
        proto("choices[0].message must be an object")
    parts: list[Part] = []
    if thinking := reasoning(msg, "message"):
        parts.append(ThinkingPart(thinking))
    # A refusal is the model's answer to show the user; canonical has no other home.
    if text := opt_text(msg, "content", "message") or opt_text(msg, "refusal", "message"):
        parts.append(TextPart(text))
    calls = msg.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        proto("message.tool_calls must be an array")
    parts.extend(_response_call(c, i) for i, c in enumerate(calls or ()))
    usage = body.get("usage")
    return Response(
        id=rid, model=model, created=created,
        message=Message("assistant", tuple(parts)),
        finish_reason=finish_in(choice.get("finish_reason"), bool(calls)),
        usage=None if usage is None else usage_in(usage),
    )


def _response_call(c: object, i: int) -> ToolCallPart:
    fn = c.get("function") if isinstance(c, dict) else None
    if not isinstance(fn, dict):
        proto(f"message.tool_calls[{i}] must be an object with a function")
    call_id, name, args = c.get("id"), fn.get("name"), fn.get("arguments")
    if args is None:
        args = "{}"
    elif isinstance(args, dict):
        args = json.dumps(args)  # a few servers send the object, not its JSON text
    if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name
            and isinstance(args, str)):
        proto(f"message.tool_calls[{i}] needs a string id, name and arguments")
    return ToolCallPart(call_id, name, args)


def from_canonical_response(resp: Response, model: str) -> dict:
    """Encode a client's Chat Completions response; ``model`` is the public id."""
    texts = [p.text for p in resp.message.parts if isinstance(p, TextPart)]
    thinking = "".join(p.text for p in resp.message.parts if isinstance(p, ThinkingPart))
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None,
                           "refusal": None}
    if thinking:
        msg["reasoning_content"] = thinking
    calls = resp.message.tool_calls
    if calls:
        msg["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}}
                             for c in calls]
    out: dict[str, Any] = {
        "id": resp.id, "object": "chat.completion", "created": resp.created, "model": model,
        "choices": [{"index": 0, "message": msg, "logprobs": None,
                     "finish_reason": FINISH_OUT[resp.finish_reason]}],
    }
    if resp.usage is not None:
        out["usage"] = usage_out(resp.usage)
    return out

