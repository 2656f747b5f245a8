"""Canonical requests -> Chat Completions bodies for OpenAI-compatible upstreams."""
from __future__ import annotations

from typing import Any

from gateway.canonical import (
    ImagePart, Message, Part, Request, ResponseFormat, TextPart, Tool, ToolCallPart,
    ToolResultPart,
)
from gateway.codecs.fields import is_num as _is_num, sniff_image_type
from gateway.codecs.openai_chat.request import PENALTIES


def from_canonical_request(req: Request, upstream_model: str, *,
                           max_tokens_field: str = "max_tokens") -> dict:
    """Encode for an OpenAI-compatible upstream.

    ``max_tokens`` is the default limit field because every compatible server knows
    it; OpenAI's reasoning models accept only ``max_completion_tokens``, so a provider
    for them passes that name. ``top_k`` is dropped: OpenAI rejects it outright.
    """
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": [w for m in req.messages for w in _encode_message(m)],
    }
    if req.max_tokens is not None:
        body[max_tokens_field] = req.max_tokens
    for key in ("temperature", "top_p", "parallel_tool_calls", "user", "seed"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    if req.stop:
        body["stop"] = list(req.stop)
    if req.tools:
        body["tools"] = [_encode_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        tc = req.tool_choice
        body["tool_choice"] = ({"type": "function", "function": {"name": tc.name}}
                               if tc.mode == "tool" else tc.mode)
    if req.response_format is not None:
        body["response_format"] = _encode_format(req.response_format)
    extra = req.metadata.get("openai_extra")
    if isinstance(extra, dict):
        body.update((k, extra[k]) for k in PENALTIES if _is_num(extra.get(k)))
    if req.stream:
        # Always ask for usage: billing needs it whether or not the client does.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _encode_tool(t: Tool) -> dict:
    described = {} if t.description is None else {"description": t.description}
    return {"type": "function", "function": {"name": t.name, **described, "parameters": t.parameters}}


def _encode_format(rf: ResponseFormat) -> dict:
    if rf.kind != "json_schema":
        return {"type": rf.kind}
    js: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema}
    if rf.strict is not None:
        js["strict"] = rf.strict
    return {"type": "json_schema", "json_schema": js}


def _named(d: dict, name: str | None) -> dict:
    if name is not None:
        d["name"] = name
    return d


def _text_content(texts: list[str]) -> str | list[dict]:
    # A lone string is what every compatible server accepts; several parts keep their
    # boundaries as an array rather than being glued into one string.
    if len(texts) <= 1:
        return texts[0] if texts else ""
    return [{"type": "text", "text": t} for t in texts]


def _encode_message(m: Message) -> list[dict]:
    texts = [p.text for p in m.parts if isinstance(p, TextPart)]
    if m.role == "system":
        return [_named({"role": "system", "content": _text_content(texts)}, m.name)]
    # Tool results become one OpenAI tool message each, ahead of any other content
    # the same canonical message carries (Anthropic puts them in user messages).
    out = [{"role": "tool", "tool_call_id": p.tool_call_id,
            "content": _text_content([c.text for c in p.content if isinstance(c, TextPart)])}
           for p in m.parts if isinstance(p, ToolResultPart)]
    if m.role == "user":
        rest = [p for p in m.parts if not isinstance(p, ToolResultPart)]
        if rest or not out:
            out.append(_named({"role": "user", "content": _user_content(rest)}, m.name))
    elif m.role == "assistant":
        calls = [{"id": p.id, "type": "function",
                  "function": {"name": p.name, "arguments": p.arguments}}
                 for p in m.parts if isinstance(p, ToolCallPart)]
        msg: dict[str, Any] = {"role": "assistant",
                               "content": _text_content(texts) if texts or not calls else None}
        if calls:
            msg["tool_calls"] = calls
        out.append(_named(msg, m.name))
    return out


def _user_content(parts: list[Part]) -> str | list[dict]:
    if all(isinstance(p, TextPart) for p in parts) and len(parts) <= 1:
        return parts[0].text if parts else ""  # type: ignore[union-attr]
    out: list[dict] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            url = p.url if p.url is not None else \
                f"data:{p.media_type or sniff_image_type(p.data_b64 or '')};base64,{p.data_b64}"
            image: dict[str, Any] = {"url": url}
            if p.detail is not None:
                image["detail"] = p.detail
            out.append({"type": "image_url", "image_url": image})
    return out


