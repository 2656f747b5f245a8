"""Splitting parsed text into overlapping chunks measured in tokens (pure).

OpenAI's rules for `chunking_strategy`: "auto" is 800-token chunks overlapping by 400;
"static" takes max_chunk_size_tokens in [100, 4096] and chunk_overlap_tokens at most
half of it. Chunks are cut on token boundaries, then nudged back to the last whitespace
in their final tenth so words are not split where that is cheap.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import errors

AUTO_MAX, AUTO_OVERLAP = 800, 400


@dataclass(frozen=True)
class Chunking:
    max_tokens: int = AUTO_MAX
    overlap: int = AUTO_OVERLAP

    def __post_init__(self) -> None:
        if not 100 <= self.max_tokens <= 4096:
            raise errors.InvalidRequest("max_chunk_size_tokens must be between 100 and 4096",
                                        field="chunking_strategy.static.max_chunk_size_tokens")
        if not 0 <= self.overlap <= self.max_tokens // 2:
            raise errors.InvalidRequest("chunk_overlap_tokens must be between 0 and half of "
                                        "max_chunk_size_tokens",
                                        field="chunking_strategy.static.chunk_overlap_tokens")

    def as_object(self) -> dict[str, Any]:
        return {"type": "static", "static": {"max_chunk_size_tokens": self.max_tokens,
                                             "chunk_overlap_tokens": self.overlap}}


def parse_strategy(raw: Any) -> Chunking:
    if raw is None:
        return Chunking()
    if not isinstance(raw, dict) or raw.get("type") not in ("auto", "static"):
        raise errors.InvalidRequest("chunking_strategy must be {\"type\": \"auto\"} or "
                                    "{\"type\": \"static\", \"static\": {...}}",
                                    field="chunking_strategy")
    if raw["type"] == "auto":
        return Chunking()
    static = raw.get("static")
    if not isinstance(static, dict):
        raise errors.InvalidRequest("chunking_strategy.static is required for type static",
                                    field="chunking_strategy.static")
    mx, ov = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if type(mx) is not int or type(ov) is not int:
        raise errors.InvalidRequest("max_chunk_size_tokens and chunk_overlap_tokens must be "
                                    "integers", field="chunking_strategy.static")
    return Chunking(mx, ov)


# The BPE encoder refuses very long inputs; text is encoded in blocks cut at whitespace.
_BLOCK_CHARS = 16_000


def _encode(text: str, encoding) -> list[int]:
    tokens: list[int] = []
    start = 0
    while start < len(text):
        end = min(start + _BLOCK_CHARS, len(text))
        if end < len(text):
            cut = max(text.rfind("\n", start, end), text.rfind(" ", start, end))
            end = cut + 1 if cut > start else end
        tokens.extend(encoding.encode(text[start:end]))
        start = end
    return tokens


def chunk_text(text: str, chunking: Chunking, encoding) -> list[str]:
    """The chunks of `text`; `encoding` has encode(str) -> list[int] and decode."""
    tokens = _encode(text, encoding)
    if not tokens:
        return []
    out: list[str] = []
    step = chunking.max_tokens - chunking.overlap
    start = 0
    while start < len(tokens):
        end = min(start + chunking.max_tokens, len(tokens))
        piece = encoding.decode(tokens[start:end])
        if end < len(tokens):
            cut = piece.rfind(" ", len(piece) * 9 // 10)
            if cut > 0:
                kept = len(encoding.encode(piece[:cut]))
                end = start + max(kept, 1)
                piece = piece[:cut]
        if piece.strip():
            out.append(piece.strip())
        if end >= len(tokens):
            break
        start = max(end - chunking.overlap, start + 1) if step > 0 else end
    return out
