"""Canonical requests -> Messages bodies for Anthropic upstreams."""
from __future__ import annotations

from typing import Any

from gateway.canonical import (
    ImagePart, Part, Request, TextPart, ThinkingPart, Tool, ToolCallPart, ToolChoice,
    ToolResultPart,
)
from gateway.codecs.fields import sniff_image_type
from gateway.codecs import hosted
from gateway.codecs.anthropic.request import (
    DEFAULT_MAX_TOKENS, JSON_INSTRUCTION, REDACTED_PREFIX, args_object,
)

def from_canonical_request(req: Request, upstream_model: str, *,
                           system_in_place: bool = True) -> dict:
    """Encode for an Anthropic upstream (see the package docstring for what cannot go).

    System messages ahead of the conversation form ``system``; later ones stay where
    they are as ``role: "system"`` messages, which Anthropic accepts mid-conversation,
    unless ``system_in_place`` is False (a model that refuses them): then they join
    ``system`` in order, as every system message did before Anthropic allowed them."""
    caches = req.metadata.get("anthropic_cache_control")
    caches = caches if isinstance(caches, dict) else {}
    system_marks = {m[0]: m[1] for m in caches.get("system", ()) if isinstance(m, list) and len(m) == 2}
    marks = {(m[0], m[1]): m[2] for m in caches.get("blocks", ())
             if isinstance(m, list) and len(m) == 3}
    system: list[dict] = []
    messages: list[dict] = []
    position = -sum(1 for m in req.messages if m.role != "system")
    for m in req.messages:
        if m.role == "system" and messages and system_in_place:
            texts = [{"type": "text", "text": p.text} for p in m.parts if isinstance(p, TextPart)]
            messages.append({"role": "system", "content": _content(texts, False)})
            continue
        if m.role == "system":
            for p in m.parts:   # system messages hold text parts only
                system.append({"type": "text", "text": p.text})
                if len(system) - 1 in system_marks:
                    system[-1]["cache_control"] = system_marks[len(system) - 1]
            continue
        blocks = [b for j, p in enumerate(m.parts)
                  if not (m.role == "assistant" and isinstance(p, ImagePart))
                  and (b := _encode_part(p, marks.get((position, j)))) is not None]
        position += 1
        role = "assistant" if m.role == "assistant" else "user"
        if role == "user":
            # Anthropic wants a turn's tool results first, and all of them in one turn.
            blocks.sort(key=lambda b: b["type"] != "tool_result")
            prev = messages[-1] if messages else None
            if m.role == "tool" and prev is not None and prev["role"] == "user" and \
                    isinstance(prev["content"], list) and \
                    all(b["type"] == "tool_result" for b in prev["content"]):
                prev["content"].extend(blocks)
                continue
        messages.append({"role": role, "content": _content(blocks, m.role == "tool")})
    rf = req.response_format
    if rf is not None and rf.kind == "json_object":
        system.append({"type": "text", "text": JSON_INSTRUCTION})
    body: dict[str, Any] = {"model": upstream_model, "messages": messages,
                            "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = _content(system, False)
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)
    for key in ("top_p", "top_k"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.tools:
        tool_marks = {m[0]: m[1] for m in caches.get("tools", ()) if isinstance(m, list) and len(m) == 2}
        body["tools"] = [_encode_tool(t, tool_marks.get(i)) for i, t in enumerate(req.tools)]
    if server_tools := hosted.specs(req, "anthropic"):
        body["tools"] = body.get("tools", []) + server_tools
    if req.tools:
        choice = _encode_choice(req.tool_choice, req.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    if req.user is not None:
        body["metadata"] = {"user_id": req.user}
    thinking = req.metadata.get("anthropic_thinking")
    if isinstance(thinking, dict):
        body["thinking"] = thinking
    output_config = req.metadata.get("anthropic_output_config")
    output_config = dict(output_config) if isinstance(output_config, dict) else {}
    if rf is not None and rf.kind == "json_schema":
        output_config["format"] = {"type": "json_schema", "schema": rf.schema}
    if output_config:
        body["output_config"] = output_config
    if isinstance(caches.get("top"), dict):
        body["cache_control"] = caches["top"]
    if req.stream:
        body["stream"] = True
    return body


def _content(blocks: list[dict], force_list: bool) -> str | list[dict]:
    # A lone unmarked text block goes as a string, the shape most clients send.
    if not force_list and len(blocks) == 1 and blocks[0]["type"] == "text" and \
            "cache_control" not in blocks[0]:
        return blocks[0]["text"]
    return blocks


def _encode_part(p: Part, cc: dict | None) -> dict | None:
    block: dict[str, Any]
    if isinstance(p, TextPart):
        block = {"type": "text", "text": p.text}
    elif isinstance(p, ImagePart):
        block = {"type": "image", "source": _encode_source(p)}
    elif isinstance(p, ToolCallPart):
        block = {"type": "tool_use", "id": p.id, "name": p.name, "input": args_object(p.arguments)}
    elif isinstance(p, ToolResultPart):
        block = {"type": "tool_result", "tool_use_id": p.tool_call_id}
        if p.content:
            block["content"] = [{"type": "text", "text": c.text} if isinstance(c, TextPart)
                                else {"type": "image", "source": _encode_source(c)}
                                for c in p.content]
        if p.is_error:
            block["is_error"] = True
    elif isinstance(p, ThinkingPart):
        if p.signature is None:
            return None
        if p.signature.startswith(REDACTED_PREFIX) and not p.text:
            block = {"type": "redacted_thinking", "data": p.signature[len(REDACTED_PREFIX):]}
        else:
            block = {"type": "thinking", "thinking": p.text, "signature": p.signature}
    else:
        return None
    if cc is not None:
        block["cache_control"] = cc
    return block


def _encode_source(p: ImagePart) -> dict:
    if p.url is not None:
        return {"type": "url", "url": p.url}
    return {"type": "base64", "media_type": p.media_type or sniff_image_type(p.data_b64 or ""),
            "data": p.data_b64}



def _encode_tool(t: Tool, cc: dict | None) -> dict:
    out: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        out["description"] = t.description
    out["input_schema"] = t.parameters
    if cc is not None:
        out["cache_control"] = cc
    return out


def _encode_choice(tc: ToolChoice | None, parallel: bool | None) -> dict | None:
    if tc is None and parallel is None:
        return None
    mode = tc.mode if tc is not None else "auto"
    out: dict[str, Any] = {"type": {"required": "any"}.get(mode, mode)}
    if tc is not None and tc.mode == "tool":
        out["name"] = tc.name
    if parallel is not None and mode != "none":
        out["disable_parallel_tool_use"] = not parallel
    return out

