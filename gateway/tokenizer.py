"""Token counting for reservations, estimates and the simulator.

Two counters. `bound_*` is what admission holds and rate limits use: a safe upper bound
that needs no tables (every token of a byte-level BPE, and of a sentencepiece vocabulary
with byte fallback, covers at least one UTF-8 byte, so a text never has more tokens than
bytes). `count_*` is exact for o200k_base, the current OpenAI vocabulary, counted by
gateway.bpe (the same tokens as tiktoken in ~6 MB; bpe-openai's own tables cost ~140 MB);
its tables load on first use only: when a stream cut short without upstream usage is
billed by estimate, for Anthropic's count_tokens route, and in the simulator. Both follow OpenAI's chat accounting (a few tokens of framing per
message). For non-OpenAI models exact counts are estimates, marked as such where billed.
"""
from __future__ import annotations

import json
import threading
from typing import Callable

from gateway import bpe
from gateway import canonical as c

# OpenAI's chat format spends ~3 tokens framing each message and 3 priming the reply.
_PER_MESSAGE = 3
_PER_REPLY = 3
# A flat charge for an image part: a 512px tile at OpenAI's low detail rate.
_IMAGE_TOKENS = 85


class _Once:
    """Builds the encoder on first use, once: streams cut together bill by estimate
    together, each on a worker thread, and without the lock every one of them would
    build its own tables (seconds of CPU and megabytes apiece) before one was kept."""

    def __init__(self, build: Callable[[], bpe.Encoder]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: bpe.Encoder | None = None

    def __call__(self) -> bpe.Encoder:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value


_encoding = _Once(lambda: bpe.Encoder(bpe.Vocabulary(bpe.ranks_file("o200k_base"))))


def encoding():
    """The shared encoder (encode/decode), for chunking text by tokens."""
    return _encoding()


def bound_text(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def count_text(text: str) -> int:
    if not text:
        return 0
    return _encoding().count(text)


def decode(tokens: list[int]) -> str:
    """Token ids back to text (for embeddings inputs sent pre-tokenised)."""
    from gateway.errors import InvalidRequest
    try:
        return _encoding().decode(tokens)
    except (KeyError, ValueError, IndexError, OverflowError):
        raise InvalidRequest("input holds a token id outside the vocabulary", field="input") from None


def _count_part(p: c.Part, text: Callable[[str], int] = count_text) -> int:
    if isinstance(p, (c.TextPart, c.ThinkingPart)):
        return text(p.text)
    if isinstance(p, c.ImagePart):
        return _IMAGE_TOKENS
    if isinstance(p, c.ToolCallPart):
        return text(p.name) + text(p.arguments) + 3
    if isinstance(p, c.ToolResultPart):
        return sum(_count_part(q, text) for q in p.content) + 3
    return 0


def count_messages(messages: tuple[c.Message, ...] | list[c.Message],
                   text: Callable[[str], int] = count_text) -> int:
    total = _PER_REPLY
    for m in messages:
        total += _PER_MESSAGE + sum(_count_part(p, text) for p in m.parts)
        if m.name:
            total += text(m.name) + 1
    return total


def count_request(req: c.Request, text: Callable[[str], int] = count_text) -> int:
    """Prompt tokens for a request: messages plus tool definitions."""
    total = count_messages(req.messages, text)
    for t in req.tools:
        total += text(json.dumps({"name": t.name, "description": t.description or "",
                                  "parameters": t.parameters}, separators=(",", ":")))
    if req.response_format is not None and req.response_format.schema is not None:
        total += text(json.dumps(req.response_format.schema, separators=(",", ":")))
    return total


def bound_request(req: c.Request) -> int:
    """At least as many tokens as the prompt can take, in any vocabulary: what holds
    and token rate limits reserve, with no tables loaded."""
    return count_request(req, bound_text)
