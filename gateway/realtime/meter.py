"""Realtime money, pure: prices per token kind, the cost of a `response.done` usage, a
response's worst case, and the count of what was relayed (for a response whose upstream
never reported usage). Integer micro-USD, rounded up once per response.

A usage block is OpenAI's: input tokens split into text, audio and cached (cached are
part of the text input and priced at the cached rate), output tokens into text and audio.
"""
from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

from gateway.billing.pricing import _usd_mtok_to_pico

_PICO = 1_000_000
AUDIO_BYTES_PER_TOKEN = 4800        # pcm16 mono 24 kHz: 100 ms per token, OpenAI's rate
_INF_OUTPUT = 4096


@dataclass(frozen=True)
class RealtimePrice:
    """Per-token prices in pico-USD."""
    text_in: int
    text_out: int
    cached_in: int
    audio_in: int
    audio_out: int

    @classmethod
    def of(cls, model: Any) -> "RealtimePrice | None":
        """From a ModelConfig; None when it has no token prices (never served free)."""
        if model.input_usd_per_mtok is None or model.output_usd_per_mtok is None:
            return None
        def pick(value: float | None, fallback: float) -> int:
            return _usd_mtok_to_pico(fallback if value is None else value)
        return cls(pick(None, model.input_usd_per_mtok), pick(None, model.output_usd_per_mtok),
                   pick(model.cached_input_usd_per_mtok, model.input_usd_per_mtok),
                   pick(model.audio_input_usd_per_mtok, model.input_usd_per_mtok),
                   pick(model.audio_output_usd_per_mtok, model.output_usd_per_mtok))


@dataclass(frozen=True)
class Tokens:
    text_in: int = 0
    cached_in: int = 0
    audio_in: int = 0
    text_out: int = 0
    audio_out: int = 0

    @property
    def input(self) -> int:
        return self.text_in + self.audio_in

    @property
    def output(self) -> int:
        return self.text_out + self.audio_out


def _int(d: Any, key: str) -> int:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0


def tokens_of_usage(usage: Any) -> Tokens | None:
    """The token counts of a response.done usage block, or None if it has none."""
    if not isinstance(usage, dict):
        return None
    inp, out = usage.get("input_token_details"), usage.get("output_token_details")
    text_in, audio_in = _int(inp, "text_tokens"), _int(inp, "audio_tokens")
    if not text_in and not audio_in:
        text_in = _int(usage, "input_tokens")
    text_out, audio_out = _int(out, "text_tokens"), _int(out, "audio_tokens")
    if not text_out and not audio_out:
        text_out = _int(usage, "output_tokens")
    return Tokens(text_in, min(_int(inp, "cached_tokens"), text_in), audio_in, text_out, audio_out)


def cost_micros(price: RealtimePrice, t: Tokens) -> int:
    pico = ((t.text_in - t.cached_in) * price.text_in + t.cached_in * price.cached_in
            + t.audio_in * price.audio_in + t.text_out * price.text_out
            + t.audio_out * price.audio_out)
    return -(-pico // _PICO)


def worst_case_micros(price: RealtimePrice, input_tokens: int, max_output_tokens: int) -> int:
    """Hold for one response: the input so far at the dearer input rate, the output cap
    at the dearer output rate (the model may answer in audio or in text)."""
    pico = (input_tokens * max(price.text_in, price.audio_in)
            + max_output_tokens * max(price.text_out, price.audio_out))
    return -(-pico // _PICO)


def max_output(value: Any, default: int) -> int:
    """A session's or response's max_output_tokens ("inf" or absent: the default)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def audio_tokens(n_bytes: int) -> int:
    return math.ceil(n_bytes / AUDIO_BYTES_PER_TOKEN)


def b64_len(data: Any) -> int:
    """Decoded size of a base64 audio chunk, without decoding it twice when valid."""
    if not isinstance(data, str):
        return 0
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return 0
