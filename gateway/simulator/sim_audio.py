"""The simulator's voice: speech as real audio files whose length follows the text, and
a transcriber that turns that audio back into the same text (pure, no I/O).

Speech lasts 0.4 s per word (at least 1 s), divided by the speed. The text rides in
the audio itself, so any copy of the file transcribes the same:
    WAV / PCM   16-bit mono; the first samples carry "PSIM" + length + UTF-8 text, one
                bit per 8 samples at +/-12000; a quiet 220 Hz tone fills the rest
    MP3         MPEG-1 Layer III frames, 32 kbit/s, 48 kHz mono, silent (no Huffman
                data); each frame's ancillary bytes carry the next piece of the text
Anything else (or audio this module did not make) transcribes as a fixed phrase, so a
real recording still gets an answer. Durations of real files are the gateway's
business (mutagen); this module knows its own.
"""
from __future__ import annotations

import math
import re
import struct

from gateway.codecs.audio import wav_header

SECONDS_PER_WORD = 0.4
PCM_RATE = 24_000
_MAGIC = b"PSIM"
_BIT_SAMPLES = 8
_MP3_HEADER = bytes((0xFF, 0xFB, 0x14, 0xC0))   # MPEG-1 L3, 32 kbit/s, 48 kHz, mono
_MP3_FRAME = 96                                  # 144 * 32000 / 48000 bytes
_MP3_SIDE = 17                                   # mono side info, all zero: silence
_MP3_FRAME_SECONDS = 1152 / 48_000
UNKNOWN_AUDIO_TEXT = "This is simulated transcription of audio the simulator did not make."


def words_of(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def speech_seconds(text: str, speed: float = 1.0) -> float:
    return max(1.0, SECONDS_PER_WORD * len(words_of(text))) / max(0.25, min(4.0, speed))


def pcm(text: str, speed: float = 1.0, rate: int = PCM_RATE) -> bytes:
    """Little-endian 16-bit mono samples at ``rate``."""
    n = int(round(speech_seconds(text, speed) * rate))
    payload = _MAGIC + struct.pack(">I", len(text.encode())) + text.encode()
    bits = [(byte >> (7 - i)) & 1 for byte in payload for i in range(8)]
    samples = []
    for b in bits:
        samples.extend([12000 if b else -12000] * _BIT_SAMPLES)
    samples = samples[:n]
    step = 2 * math.pi * 220 / rate
    samples.extend(int(1500 * math.sin(step * i)) for i in range(len(samples), n))
    return struct.pack(f"<{len(samples)}h", *samples)


def wav(text: str, speed: float = 1.0, rate: int = PCM_RATE) -> bytes:
    samples = pcm(text, speed, rate)
    return wav_header(len(samples), rate) + samples


def mp3(text: str, speed: float = 1.0) -> bytes:
    frames = max(1, int(round(speech_seconds(text, speed) / _MP3_FRAME_SECONDS)))
    room = _MP3_FRAME - 4 - _MP3_SIDE - 1
    payload = _MAGIC + struct.pack(">I", len(text.encode())) + text.encode()
    out = bytearray()
    for i in range(frames):
        piece = payload[i * room:(i + 1) * room]
        body = bytes((len(piece),)) + piece
        out += _MP3_HEADER + bytes(_MP3_SIDE) + body + bytes(_MP3_FRAME - 4 - _MP3_SIDE - len(body))
    return bytes(out)


def speech(text: str, fmt: str, speed: float = 1.0) -> bytes | None:
    """The audio for ``text`` in ``fmt``, or None for formats the simulator cannot make."""
    if fmt == "wav":
        return wav(text, speed)
    if fmt == "pcm":
        return pcm(text, speed)
    if fmt == "mp3":
        return mp3(text, speed)
    return None


def _from_samples(raw: bytes) -> str | None:
    count = len(raw) // 2
    need = (len(_MAGIC) + 4) * 8 * _BIT_SAMPLES
    if count < need:
        return None
    samples = struct.unpack(f"<{count}h", raw[:count * 2])

    def read(n_bytes: int, start_bit: int) -> bytes | None:
        out = bytearray()
        for k in range(n_bytes):
            v = 0
            for i in range(8):
                at = (start_bit + k * 8 + i) * _BIT_SAMPLES + _BIT_SAMPLES // 2
                if at >= count:
                    return None
                v = (v << 1) | (1 if samples[at] > 0 else 0)
            out.append(v)
        return bytes(out)

    head = read(8, 0)
    if head is None or head[:4] != _MAGIC:
        return None
    body = read(struct.unpack(">I", head[4:])[0], 64)
    return body.decode("utf-8", "replace") if body is not None else None


def _wav_samples(data: bytes) -> bytes | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if kind == b"data":
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


def _from_mp3(data: bytes) -> str | None:
    pos = data.find(_MP3_HEADER)
    buf = bytearray()
    while pos >= 0 and pos + _MP3_FRAME <= len(data) and data[pos:pos + 4] == _MP3_HEADER:
        at = pos + 4 + _MP3_SIDE
        buf += data[at + 1:at + 1 + data[at]]
        pos += _MP3_FRAME
    if buf[:4] != _MAGIC or len(buf) < 8:
        return None
    n = struct.unpack(">I", bytes(buf[4:8]))[0]
    return bytes(buf[8:8 + n]).decode("utf-8", "replace")


def transcribe(data: bytes) -> str:
    """The text the simulator's own speech carries; a fixed phrase for any other audio."""
    samples = _wav_samples(data)
    text = _from_samples(samples if samples is not None else data)
    if text is None:
        text = _from_mp3(data)
    return text if text is not None else UNKNOWN_AUDIO_TEXT


def segments(text: str, duration: float) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]]]:
    """(segments, words) with times spread evenly: one segment per sentence."""
    words = words_of(text)
    if not words:
        return [], []
    per = duration / len(words)
    timed = [(round(i * per, 3), round((i + 1) * per, 3), w) for i, w in enumerate(words)]
    segs, start = [], 0
    for i, w in enumerate(words):
        if w.endswith((".", "!", "?")) or i == len(words) - 1:
            segs.append((timed[start][0], timed[i][1], " " + " ".join(words[start:i + 1])))
            start = i + 1
    return segs, timed
