"""Gemini Live shapes the realtime bridge reads (pure): usageMetadata as an OpenAI
realtime usage block, pcm16 24 kHz -> 16 kHz for what Gemini hears, and tolerant
readers for an upstream's JSON (a field of the wrong type reads as absent).
"""
from __future__ import annotations

import array
import sys
from typing import Any

Event = dict[str, Any]


def resample_24k_to_16k(pcm: bytes) -> bytes:
    """pcm16 little-endian mono 24 kHz -> 16 kHz (Gemini hears 16 kHz): of every three
    samples, the first is kept and the other two averaged, which is linear interpolation
    at 1.5-sample steps, done a slice at a time rather than a sample at a time."""
    src = array.array("h", pcm[:len(pcm) - len(pcm) % 6])
    if sys.byteorder == "big":
        src.byteswap()
    out = array.array("h", bytes(2 * (len(src) // 3 * 2)))
    out[0::2] = src[0::3]
    out[1::2] = array.array("h", [(a + b) >> 1 for a, b in zip(src[1::3], src[2::3])])
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def obj(value: Any) -> dict[str, Any]:
    """An upstream's JSON object, or an empty one when it sent something else."""
    return value if isinstance(value, dict) else {}


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_of(meta: Any) -> Event | None:
    """Gemini's usageMetadata as an OpenAI realtime usage block."""
    if not isinstance(meta, dict):
        return None

    def by_modality(details: Any) -> dict[str, int]:
        out = {"TEXT": 0, "AUDIO": 0}
        for d in details if isinstance(details, list) else ():
            if isinstance(d, dict) and d.get("modality") in out:
                out[d["modality"]] += count(d.get("tokenCount"))
        return out
    prompt = count(meta.get("promptTokenCount"))
    response = count(meta.get("responseTokenCount")) or count(meta.get("candidatesTokenCount"))
    pin, pout = by_modality(meta.get("promptTokensDetails")), by_modality(
        meta.get("responseTokensDetails") or meta.get("candidatesTokensDetails"))
    if not pin["TEXT"] and not pin["AUDIO"]:
        pin["TEXT"] = prompt
    if not pout["TEXT"] and not pout["AUDIO"]:
        pout["TEXT"] = response
    return {"total_tokens": prompt + response, "input_tokens": prompt, "output_tokens": response,
            "input_token_details": {"text_tokens": pin["TEXT"], "audio_tokens": pin["AUDIO"],
                                    "cached_tokens": min(count(meta.get(
                                        "cachedContentTokenCount")), pin["TEXT"])},
            "output_token_details": {"text_tokens": pout["TEXT"], "audio_tokens": pout["AUDIO"]}}
