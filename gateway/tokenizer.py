"""Token counting for reservations, estimates and the simulator.

One encoder (o200k_base, the current OpenAI vocabulary) loaded lazily and shared; the
per-message overhead follows OpenAI's chat accounting (a few tokens of framing per
message). For non-OpenAI models the counts are estimates, and are marked as such where
they are billed.
"""
from __future__ import annotations

import functools
import json

from gateway import canonical as c

# OpenAI's chat format spends ~3 tokens framing each message and 3 priming the reply.
_PER_MESSAGE = 3
_PER_REPLY = 3
# A flat charge for an image part: a 512px tile at OpenAI's low detail rate.
_IMAGE_TOKENS = 85


@functools.lru_cache(maxsize=1)
def _encoding():
    import bpe_openai
    return bpe_openai.get_encoding("o200k_base")


def encoding():
    """The shared encoder (encode/decode), for chunking text by tokens."""
    return _encoding()


def count_text(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text))


def decode(tokens: list[int]) -> str:
    """Token ids back to text (for embeddings inputs sent pre-tokenised)."""
    from gateway.errors import InvalidRequest
    try:
        return _encoding().decode(tokens)
    except (KeyError, ValueError, IndexError, OverflowError):
        raise InvalidRequest("input holds a token id outside the vocabulary", field="input") from None


def _count_part(p: c.Part) -> int:
    if isinstance(p, (c.TextPart, c.ThinkingPart)):
        return count_text(p.text)
    if isinstance(p, c.ImagePart):
        return _IMAGE_TOKENS
    if isinstance(p, c.ToolCallPart):
        return count_text(p.name) + count_text(p.arguments) + 3
    if isinstance(p, c.ToolResultPart):
        return sum(_count_part(q) for q in p.content) + 3
    return 0


def count_messages(messages: tuple[c.Message, ...] | list[c.Message]) -> int:
    total = _PER_REPLY
    for m in messages:
        total += _PER_MESSAGE + sum(_count_part(p) for p in m.parts)
        if m.name:
            total += count_text(m.name) + 1
    return total


def count_request(req: c.Request) -> int:
    """Prompt tokens for a request: messages plus tool definitions."""
    total = count_messages(req.messages)
    for t in req.tools:
        total += count_text(json.dumps({"name": t.name, "description": t.description or "",
                                        "parameters": t.parameters}, separators=(",", ":")))
    if req.response_format is not None and req.response_format.schema is not None:
        total += count_text(json.dumps(req.response_format.schema, separators=(",", ":")))
    return total
