"""Gemini GenerateContentResponse bodies: upstream -> canonical, canonical -> client, and
the usageMetadata and finishReason helpers streams share.

Usage: Gemini's promptTokenCount includes cached tokens (as canonical input does);
candidatesTokenCount excludes thoughts, which canonical output includes, so
output = candidates + thoughts and reasoning = thoughts; toolUsePromptTokenCount is
prompt the upstream bills, so it joins the input.

Upstream decoding is lenient where Gemini grows (an unknown finishReason is "error", an
unknown part kind is skipped) and strict where a wrong shape means we misread the
body (UpstreamProtocolError).
"""
from __future__ import annotations

from typing import Any, NoReturn

from gateway.canonical import (
    FinishReason, ImagePart, Message, Part, Response, TextPart, ThinkingPart, ToolCallPart,
    Usage,
)
from gateway.codecs.fields import is_int as _is_int
from gateway.codecs.gemini.parts import (
    dumps, image_type, is_base64, model_parts_out, render_code,
)
from gateway.errors import UpstreamError, UpstreamProtocolError

FINISH_IN: dict[str, FinishReason] = {
    "STOP": "stop", "MAX_TOKENS": "length",
    **{k: "content_filter" for k in (
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR")},
}
FINISH_OUT = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP",
               "content_filter": "SAFETY", "error": "OTHER"}


def proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Gemini {problem}")


def raise_embedded_error(body: dict) -> None:
    err = body.get("error")
    if err is not None:
        msg = err.get("message") if isinstance(err, dict) else err
        raise UpstreamError(f"upstream reported an error: {msg if isinstance(msg, str) else 'unknown'}")


def finish_in(v: object, has_calls: bool) -> FinishReason:
    """Gemini's finishReason; reasons added after this was written count as errors."""
    if v is None:
        reason: FinishReason = "stop"
    elif not isinstance(v, str):
        proto(f"finishReason {v!r} is not a string")
    else:
        reason = FINISH_IN.get(v.upper(), "error")
    # Gemini says STOP beside function calls; agent loops wait for "tool_calls".
    return "tool_calls" if reason == "stop" and has_calls else reason


def _count(u: dict, key: str) -> int:
    v = u.get(key)
    if v is None:
        return 0
    if not _is_int(v) or v < 0:
        proto(f"usageMetadata.{key} must be a non-negative integer")
    return v


def usage_in(u: object) -> Usage:
    """Gemini counts the prompt with cached tokens in it and thoughts beside the
    candidates; canonical output includes reasoning, as OpenAI's does."""
    if not isinstance(u, dict):
        proto("usageMetadata must be an object")
    prompt = _count(u, "promptTokenCount") + _count(u, "toolUsePromptTokenCount")
    thoughts = _count(u, "thoughtsTokenCount")
    return Usage(input_tokens=prompt,
                 output_tokens=_count(u, "candidatesTokenCount") + thoughts,
                 cached_input_tokens=min(_count(u, "cachedContentTokenCount"), prompt),
                 reasoning_tokens=thoughts)


def usage_out(u: Usage) -> dict:
    return {"promptTokenCount": u.input_tokens,
            "candidatesTokenCount": max(0, u.output_tokens - u.reasoning_tokens),
            "totalTokenCount": u.total_tokens,
            "cachedContentTokenCount": u.cached_input_tokens,
            "thoughtsTokenCount": u.reasoning_tokens}


def upstream_part(p: object, where: str, call_index: int) -> list[Part]:
    """One part of an upstream candidate; ``call_index`` numbers id-less calls."""
    if not isinstance(p, dict):
        proto(f"{where} must be an object")
    sig = p.get("thoughtSignature")
    if sig is not None and not isinstance(sig, str):
        proto(f"{where}.thoughtSignature must be a string")
    lead: list[Part] = [ThinkingPart("", sig)] if sig else []
    text = p.get("text")
    if text is not None:
        if not isinstance(text, str):
            proto(f"{where}.text must be a string")
        if p.get("thought") is True:
            return [ThinkingPart(text, sig)] if text or sig else []
        return lead + ([TextPart(text)] if text else [])
    fc = p.get("functionCall")
    if fc is not None:
        name = fc.get("name") if isinstance(fc, dict) else None
        args = fc.get("args") if isinstance(fc, dict) else None
        call_id = fc.get("id") if isinstance(fc, dict) else None
        if not isinstance(name, str) or not name or not isinstance(args, (dict, type(None))) \
                or not isinstance(call_id, (str, type(None))):
            proto(f"{where}.functionCall needs a name, an object of args and a string id")
        return lead + [ToolCallPart(call_id or f"call_{call_index}", name, dumps(args or {}))]
    for kind in ("executableCode", "codeExecutionResult"):
        v = p.get(kind)
        if isinstance(v, dict):
            return lead + [TextPart(render_code(kind, v))]
    blob = p.get("inlineData")
    if isinstance(blob, dict) and isinstance(blob.get("data"), str) and is_base64(blob["data"]) \
            and image_type(blob.get("mimeType")):
        return lead + [ImagePart(data_b64=blob["data"], media_type=blob["mimeType"])]
    # Anything else (a kind newer than this codec) has no canonical home.
    return lead


def candidate_of(body: dict) -> dict | None:
    """Candidate 0 of a response or chunk (n=1 is all we serve), or None."""
    cands = body.get("candidates")
    if cands is None:
        return None
    if not isinstance(cands, list):
        proto("candidates must be an array")
    for cand in cands:
        if not isinstance(cand, dict):
            proto("candidate must be an object")
        if cand.get("index", 0) in (0, None):
            return cand
    return None


def candidate_parts(cand: dict) -> list:
    content = cand.get("content")
    if content is None:
        return []  # a blocked candidate carries no content
    if not isinstance(content, dict):
        proto("candidate content must be an object")
    parts = content.get("parts")
    if parts is None:
        return []
    if not isinstance(parts, list):
        proto("candidate content.parts must be an array")
    return parts


def blocked(body: dict) -> bool:
    fb = body.get("promptFeedback")
    return isinstance(fb, dict) and fb.get("blockReason") not in (None, "BLOCKED_REASON_UNSPECIFIED")


def head(body: dict) -> tuple[str, str]:
    rid, model = body.get("responseId", ""), body.get("modelVersion", "")
    if not isinstance(rid, str) or not isinstance(model, str):
        proto("responseId and modelVersion must be strings")
    return rid, model


def to_canonical_response(body: object) -> Response:
    """Decode an upstream's non-streamed GenerateContentResponse."""
    if not isinstance(body, dict):
        proto("response is not a JSON object")
    raise_embedded_error(body)
    rid, model = head(body)
    usage = body.get("usageMetadata")
    usage_value = None if usage is None else usage_in(usage)
    cand = candidate_of(body)
    if cand is None:
        if blocked(body):
            return Response(id=rid, model=model, message=Message("assistant", ()),
                            finish_reason="content_filter", usage=usage_value)
        proto("response has no candidates")
    parts: list[Part] = []
    calls = 0
    for j, p in enumerate(candidate_parts(cand)):
        got = upstream_part(p, f"content.parts[{j}]", calls)
        calls += sum(isinstance(x, ToolCallPart) for x in got)
        parts.extend(got)
    return Response(id=rid, model=model, message=Message("assistant", tuple(parts)),
                    finish_reason=finish_in(cand.get("finishReason"), calls > 0),
                    usage=usage_value)


def from_canonical_response(resp: Response, model: str) -> dict:
    """Encode a client's GenerateContentResponse; ``model`` is the public id."""
    content: dict[str, Any] = {"role": "model"}
    parts = model_parts_out(resp.message.parts)
    if parts:
        content["parts"] = parts
    out: dict[str, Any] = {
        "candidates": [{"content": content, "finishReason": FINISH_OUT[resp.finish_reason],
                        "index": 0}],
        "modelVersion": model, "responseId": resp.id,
    }
    if resp.usage is not None:
        out["usageMetadata"] = usage_out(resp.usage)
    return out


