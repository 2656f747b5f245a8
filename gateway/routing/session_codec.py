"""Canonical messages <-> JSON for session memory, and how compaction condenses (pure).

Sessions store canonical messages, not any dialect's wire shape, so a conversation
started over OpenAI chat continues over Anthropic Messages or Gemini: each turn is
decoded by its own dialect's codec and re-encoded from the same canonical history.

    {"role": "user", "name"?: str, "parts": [
        {"type": "text", "text"}                         |
        {"type": "image", "url"? | "data_b64"?, "media_type"?, "detail"?} |
        {"type": "tool_call", "id", "name", "arguments"} |
        {"type": "tool_result", "tool_call_id", "content": [text|image], "is_error"} |
        {"type": "thinking", "text", "signature"?}]}

Decoding rebuilds the frozen dataclasses, whose own checks reject a malformed row.

Compaction: ``compaction_cut`` picks where the kept tail starts (never on a tool
result or an assistant turn, which upstreams refuse without what came before);
``transcript`` renders the part to condense for the summarising model; and
``extractive_summary`` is the fallback when no model can do it: the opening of every
user and assistant message, newest kept when it grows too long.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from gateway import canonical as c

# How much summary to carry: enough for names, facts and decisions, small next to a
# prompt. The extractive fallback keeps this many characters, the newest first.
SUMMARY_CHARS = 4000
_LINE_CHARS = 200


def _part(p: c.Part) -> dict[str, Any]:
    if isinstance(p, c.TextPart):
        return {"type": "text", "text": p.text}
    if isinstance(p, c.ImagePart):
        d: dict[str, Any] = {"type": "image"}
        for k in ("url", "data_b64", "media_type", "detail"):
            if getattr(p, k) is not None:
                d[k] = getattr(p, k)
        return d
    if isinstance(p, c.ToolCallPart):
        return {"type": "tool_call", "id": p.id, "name": p.name, "arguments": p.arguments}
    if isinstance(p, c.ToolResultPart):
        return {"type": "tool_result", "tool_call_id": p.tool_call_id,
                "content": [_part(q) for q in p.content], "is_error": p.is_error}
    if isinstance(p, c.ThinkingPart):
        d = {"type": "thinking", "text": p.text}
        if p.signature is not None:
            d["signature"] = p.signature
        return d
    raise TypeError(f"cannot store a {type(p).__name__}")


def _unpart(d: dict[str, Any]) -> c.Part:
    kind = d["type"]
    if kind == "text":
        return c.TextPart(d["text"])
    if kind == "image":
        return c.ImagePart(url=d.get("url"), data_b64=d.get("data_b64"),
                           media_type=d.get("media_type"), detail=d.get("detail"))
    if kind == "tool_call":
        return c.ToolCallPart(d["id"], d["name"], d["arguments"])
    if kind == "tool_result":
        return c.ToolResultPart(d["tool_call_id"], tuple(_unpart(q) for q in d["content"]),
                                bool(d.get("is_error", False)))
    if kind == "thinking":
        return c.ThinkingPart(d["text"], d.get("signature"))
    raise ValueError(f"unknown stored part type {kind!r}")


def encode_message(m: c.Message) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role, "parts": [_part(p) for p in m.parts]}
    if m.name is not None:
        d["name"] = m.name
    return d


def decode_message(d: dict[str, Any]) -> c.Message:
    """Raises ValueError (or KeyError/TypeError) on a malformed stored message."""
    return c.Message(d["role"], tuple(_unpart(p) for p in d["parts"]), d.get("name"))


def decode_messages(raw: str) -> tuple[c.Message, ...]:
    return tuple(decode_message(d) for d in json.loads(raw))


def decode_envelopes(raw: str) -> tuple[c.Message, ...]:
    """Stored turns are {"t": tokens, "m": message}; the tokens are the store's business."""
    return tuple(decode_message(e["m"]) for e in json.loads(raw))


# ---------------------------------------------------------------- compaction


def _starts_turn(m: c.Message) -> bool:
    return m.role == "user" and not any(isinstance(p, c.ToolResultPart) for p in m.parts)


def compaction_cut(messages: Sequence[c.Message], keep: int) -> int:
    """Index where the kept tail starts: about the last ``keep`` messages, moved later
    to the first user message that opens a turn (so at most ``keep`` are kept)."""
    cut = max(0, len(messages) - keep)
    while cut < len(messages) and not _starts_turn(messages[cut]):
        cut += 1
    return cut


def _line(m: c.Message) -> str:
    bits = []
    text = " ".join(m.text.split())
    if text:
        bits.append(text if len(text) <= _LINE_CHARS else text[:_LINE_CHARS - 1] + "…")
    for p in m.parts:
        if isinstance(p, c.ToolCallPart):
            bits.append(f"[called {p.name}]")
        elif isinstance(p, c.ToolResultPart):
            result = " ".join(p.text.split())[:_LINE_CHARS]
            bits.append(f"[tool result: {result}]")
        elif isinstance(p, c.ImagePart):
            bits.append("[image]")
    return f"{m.role}: {' '.join(bits)}" if bits else ""


def transcript(previous: str | None, messages: Sequence[c.Message]) -> str:
    lines = [f"(summary of what came before: {previous})"] if previous else []
    lines += [ln for ln in (_line(m) for m in messages) if ln]
    return "\n".join(lines)


def extractive_summary(previous: str | None, messages: Sequence[c.Message]) -> str:
    """The earlier summary plus one line per message, trimmed from the oldest end."""
    text = transcript(previous, messages)
    if len(text) <= SUMMARY_CHARS:
        return text
    return "…" + text[-(SUMMARY_CHARS - 1):]


SUMMARY_INSTRUCTIONS = (
    "You condense conversations. Summarise the conversation below so that an assistant "
    "can continue it: keep names, facts, numbers, decisions, open questions and the "
    "user's preferences; drop pleasantries. Write plain prose, at most 250 words.")
