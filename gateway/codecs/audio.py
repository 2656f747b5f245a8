"""Audio in the OpenAI shapes: speech requests, transcription uploads and every
transcript response_format, plus the SSE events of both streams (pure).

Client side:
    speech_to_canonical(body, stream)               POST /v1/audio/speech[/stream]
    transcription_to_canonical(form, translate, max_bytes)
    transcript_body(res, req) -> (bytes, content type)   json|text|srt|vtt|verbose_json
    speech_delta / speech_done, transcript_delta / transcript_done   SSE event payloads
Upstream side (OpenAI kind): speech_upstream_body, transcription_upstream_fields.
"""
from __future__ import annotations

import base64
import json
import struct

from gateway import canonical_ops as o
from gateway import errors
from gateway.codecs.fields import bad, body_with_model, is_num
from gateway.codecs.multipart import Form

MAX_SPEECH_CHARS = 4096
VOICES_HINT = "alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, verse"


def speech_to_canonical(body: object, stream: bool = False) -> o.SpeechRequest:
    body, model = body_with_model(body)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        bad("input", "is required and must be a non-empty string")
    if len(text) > MAX_SPEECH_CHARS:
        bad("input", f"is {len(text)} characters; at most {MAX_SPEECH_CHARS} are allowed")
    voice = body.get("voice", "alloy")
    if isinstance(voice, dict) and isinstance(voice.get("id"), str):
        voice = voice["id"]                       # custom voice object
    if not isinstance(voice, str) or not voice:
        bad("voice", f"must be a voice name ({VOICES_HINT})")
    fmt = body.get("response_format", "mp3")
    if fmt not in o.SPEECH_FORMATS:
        bad("response_format", "must be one of " + ", ".join(o.SPEECH_FORMATS))
    speed = body.get("speed", 1.0)
    if not is_num(speed) or not 0.25 <= speed <= 4.0:
        bad("speed", "must be a number from 0.25 to 4")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        bad("instructions", "must be a string")
    sf = body.get("stream_format", "audio")
    if sf not in ("audio", "sse"):
        bad("stream_format", "must be 'audio' or 'sse'")
    return o.SpeechRequest(model=model, input=text, voice=voice, format=fmt, speed=float(speed),
                           instructions=instructions, stream_format=sf if stream or sf == "sse" else "audio")


def _flag(v: str | None, name: str) -> bool:
    if v is None or v.lower() in ("false", "0", ""):
        return False
    if v.lower() in ("true", "1"):
        return True
    bad(name, "must be true or false")


def transcription_to_canonical(form: Form, translate: bool) -> o.TranscriptionRequest:
    f = form.files.get("file")
    if f is None:
        bad("file", "is required: upload the audio as a multipart file part")
    if not f.data:
        bad("file", "is empty")
    model = form.get("model")
    if not model:
        bad("model", "is required")
    fmt = form.get("response_format") or "json"
    if fmt not in o.TRANSCRIPT_FORMATS:
        bad("response_format", "must be one of " + ", ".join(o.TRANSCRIPT_FORMATS))
    grans = tuple(form.all("timestamp_granularities")) or ("segment",)
    for g in grans:
        if g not in ("word", "segment"):
            bad("timestamp_granularities", "holds 'word' and/or 'segment'")
    temp = form.get("temperature")
    try:
        temperature = float(temp) if temp not in (None, "") else None
    except ValueError:
        bad("temperature", "must be a number")
    if temperature is not None and not 0 <= temperature <= 1:
        bad("temperature", "must be a number from 0 to 1")
    stream = _flag(form.get("stream"), "stream")
    if stream and translate:
        bad("stream", "is not supported for translations")
    return o.TranscriptionRequest(
        model=model, audio=f.data, filename=f.filename, media_type=f.media_type,
        language=None if translate else (form.get("language") or None),
        prompt=form.get("prompt") or None, response_format=fmt,
        timestamp_granularities=grans, temperature=temperature, translate=translate, stream=stream)


# ---------------------------------------------------------------- transcript answers

def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def segments(res: o.TranscriptionResult) -> tuple[o.Segment, ...]:
    return res.segments or ((o.Segment(0.0, res.duration, res.text),) if res.text else ())


def transcript_body(res: o.TranscriptionResult, req: o.TranscriptionRequest) -> tuple[bytes, str]:
    fmt = req.response_format
    if fmt == "text":
        return (res.text + "\n").encode(), "text/plain; charset=utf-8"
    if fmt == "srt":
        cues = [f"{i}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{s.text.strip()}\n"
                for i, s in enumerate(segments(res), 1)]
        return "\n".join(cues).encode(), "text/plain; charset=utf-8"
    if fmt == "vtt":
        cues = [f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{s.text.strip()}\n"
                for s in segments(res)]
        return ("WEBVTT\n\n" + "\n".join(cues)).encode(), "text/vtt; charset=utf-8"
    usage = {"type": "duration", "seconds": int(-(-res.duration // 1))}
    if fmt == "json":
        return json.dumps({"text": res.text, "usage": usage}).encode(), "application/json"
    body: dict = {"task": "translate" if req.translate else "transcribe", "language": res.language,
                  "duration": round(res.duration, 3), "text": res.text}
    if "segment" in req.timestamp_granularities:
        body["segments"] = [{"id": i, "seek": 0, "start": s.start, "end": s.end, "text": s.text,
                             "tokens": [], "temperature": req.temperature or 0.0,
                             "avg_logprob": 0.0, "compression_ratio": 1.0, "no_speech_prob": 0.0}
                            for i, s in enumerate(segments(res))]
    if "word" in req.timestamp_granularities:
        body["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in res.words]
    body["usage"] = usage
    return json.dumps(body).encode(), "application/json"


def transcript_delta(text: str) -> dict:
    return {"type": "transcript.text.delta", "delta": text}


def transcript_done(res: o.TranscriptionResult) -> dict:
    return {"type": "transcript.text.done", "text": res.text,
            "usage": {"type": "duration", "seconds": int(-(-res.duration // 1))}}


def speech_delta(chunk: bytes) -> dict:
    return {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}


def speech_done(input_chars: int) -> dict:
    return {"type": "speech.audio.done",
            "usage": {"input_tokens": input_chars, "output_tokens": 0, "total_tokens": input_chars}}


# ---------------------------------------------------------------- upstream (OpenAI kind)

def wav_header(data_len: int, rate: int = 24_000, channels: int = 1, bits: int = 16) -> bytes:
    """A PCM WAV header: what wraps the raw 16-bit samples Gemini speaks."""
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
            + b"data" + struct.pack("<I", data_len))




def speech_upstream_body(req: o.SpeechRequest, model: str) -> dict:
    body: dict = {"model": model, "input": req.input, "voice": req.voice,
                  "response_format": req.format, "speed": req.speed}
    if req.instructions:
        body["instructions"] = req.instructions
    return body


def transcription_upstream_fields(req: o.TranscriptionRequest, model: str) -> list[tuple[str, str]]:
    """Form fields for the upstream call; verbose_json is asked for so segments and the
    language come back whatever format the client wanted (we render it ourselves)."""
    out = [("model", model), ("response_format", "verbose_json")]
    for g in req.timestamp_granularities:
        out.append(("timestamp_granularities[]", g))
    if req.language:
        out.append(("language", req.language))
    if req.prompt:
        out.append(("prompt", req.prompt))
    if req.temperature is not None:
        out.append(("temperature", str(req.temperature)))
    return out


def transcription_upstream_result(data: object, duration: float) -> o.TranscriptionResult:
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise errors.UpstreamProtocolError("upstream transcription answer has no text")
    segs = []
    for s in data.get("segments") or ():
        if isinstance(s, dict) and is_num(s.get("start")) and is_num(s.get("end")) and isinstance(s.get("text"), str):
            segs.append(o.Segment(float(s["start"]), float(s["end"]), s["text"]))
    words = []
    for w in data.get("words") or ():
        if isinstance(w, dict) and is_num(w.get("start")) and is_num(w.get("end")) and isinstance(w.get("word"), str):
            words.append(o.Word(float(w["start"]), float(w["end"]), w["word"]))
    lang = data.get("language") if isinstance(data.get("language"), str) else "english"
    return o.TranscriptionResult(text=data["text"], duration=duration, language=lang,
                                 segments=tuple(segs), words=tuple(words))
