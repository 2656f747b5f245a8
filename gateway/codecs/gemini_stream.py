"""Gemini response shapes, whole and streamed, and the part encoding requests share.

Split from gemini.py (which owns request bodies and re-exports the two response
functions) to keep modules small. Owns: upstream GenerateContentResponse bodies in
(``to_canonical_response``), client bodies out (``from_canonical_response``), upstream
SSE chunks in (``StreamDecoder``), client chunks out (``StreamEncoder``), usageMetadata
and finishReason both ways, and model-turn part encoding. The rules for ids, thought
signatures and lossy spots are in gemini.py's docstring.

Usage: Gemini's promptTokenCount includes cached tokens (as canonical input does);
candidatesTokenCount excludes thoughts, which canonical output includes, so
output = candidates + thoughts and reasoning = thoughts; toolUsePromptTokenCount is
prompt the upstream bills, so it joins the input.

Upstream decoding is lenient where Gemini grows (an unknown finishReason is "error", an
unknown part kind is skipped) and strict where a wrong shape means we misread the
body (UpstreamProtocolError).
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, NoReturn

from gateway.canonical import (
    Finish, FinishReason, ImagePart, Message, Part, Response, StreamEvent, StreamStart,
    TextDelta, TextPart, ThinkingDelta, ThinkingPart, ToolCallDelta, ToolCallPart,
    ToolCallStart, Usage, UsageEvent,
)
from gateway.errors import UpstreamError, UpstreamProtocolError

SYNTHETIC_ID = re.compile(r"call_[0-9]+")
_IMAGE_EXT = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".gif": "image/gif", ".webp": "image/webp", ".heic": "image/heic",
              ".heif": "image/heif"}
_FINISH_IN: dict[str, FinishReason] = {
    "STOP": "stop", "MAX_TOKENS": "length",
    **{k: "content_filter" for k in (
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR")},
}
_FINISH_OUT = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP",
               "content_filter": "SAFETY", "error": "OTHER"}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def dumps(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def render_code(kind: str, v: dict) -> str:
    """executableCode / codeExecutionResult as the text a reader would want."""
    if kind == "executableCode":
        lang = v.get("language")
        lang = lang.lower() if isinstance(lang, str) and lang != "LANGUAGE_UNSPECIFIED" else ""
        code = v.get("code")
        return f"```{lang}\n{code if isinstance(code, str) else ''}\n```"
    out = v.get("output")
    return out if isinstance(out, str) else ""


def image_type(mime: object, uri: str | None = None) -> str | None:
    if isinstance(mime, str) and mime.lower().startswith("image/"):
        return mime
    if mime is None and uri is not None:
        m = re.search(r"\.[A-Za-z]+$", uri.split("?", 1)[0])
        return _IMAGE_EXT.get(m[0].lower()) if m else None
    return None


def _sniff(data_b64: str) -> str:
    """The media type of inline image data that came without one, from its base64 prefix."""
    for prefix, kind in (("iVBOR", "image/png"), ("/9j/", "image/jpeg"),
                         ("R0lGOD", "image/gif"), ("UklGR", "image/webp")):
        if data_b64.startswith(prefix):
            return kind
    return "image/png"


_B64_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B64_URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def is_base64(text: str) -> bool:
    """Whether google-genai will accept ``text`` as bytes: standard or URL-safe
    base64, padded or not, and exactly what encoding its bytes gives back."""
    core = text.rstrip("=")
    if core != text and len(text) % 4:
        return False
    for pattern, alt in ((_B64_STD, None), (_B64_URL, b"-_")):
        if pattern.fullmatch(text):
            try:
                raw = base64.b64decode(core + "=" * (-len(core) % 4), altchars=alt, validate=True)
            except ValueError:
                return False
            return base64.b64encode(raw, altchars=alt).decode().rstrip("=") == core
    return False


def signature_out(sig: str | None) -> str | None:
    """A signature fit to write to Gemini, which types it as bytes: anything else came
    from another provider, would make google-genai fail to parse the whole response,
    and could not mean anything to Gemini anyway."""
    return sig if sig and is_base64(sig) else None


def is_synthetic_id(call_id: str) -> bool:
    return SYNTHETIC_ID.fullmatch(call_id) is not None


def image_out(p: ImagePart) -> dict:
    if p.data_b64 is not None:
        return {"inlineData": {"mimeType": p.media_type or _sniff(p.data_b64), "data": p.data_b64}}
    url = p.url or ""
    return {"fileData": {"mimeType": p.media_type or image_type(None, url) or "image/jpeg",
                         "fileUri": url}}


def _args_out(arguments: str) -> dict:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def with_id(d: dict, call_id: str) -> dict:
    if call_id and not is_synthetic_id(call_id):
        d["id"] = call_id
    return d


class _Signer:
    """A signature that arrived on its own (an empty ThinkingPart or ThinkingDelta),
    held until the part it belongs to, which is the next one written."""

    def __init__(self) -> None:
        self.pending: str | None = None

    def hold(self, sig: str) -> list[dict]:
        """Hold ``sig``; returns a carrier part for one already held, to write first."""
        flushed = self.flush()
        self.pending = sig
        return flushed

    def take(self) -> str | None:
        sig, self.pending = self.pending, None
        return sig

    def sign(self, part: dict, own: str | None = None) -> list[dict]:
        """The parts to write for ``part``: it takes the held signature unless it has
        its own, in which case the held one goes first on a carrier of its own."""
        if own:
            part["thoughtSignature"] = own
            return self.flush() + [part]
        if self.pending:
            part["thoughtSignature"] = self.take()
        return [part]

    def flush(self) -> list[dict]:
        """Gemini's own shape for a signature with no part: an empty text part."""
        return [{"text": "", "thoughtSignature": self.take()}] if self.pending else []


def model_parts_out(parts: tuple[Part, ...], names: dict[str, str] | None = None) -> list[dict]:
    """An assistant message's parts as Gemini model-turn parts (client or upstream)."""
    out: list[dict] = []
    signer = _Signer()
    for p in parts:
        if isinstance(p, ThinkingPart):
            sig = signature_out(p.signature)
            if p.text:
                out += signer.sign({"text": p.text, "thought": True}, sig)
            elif sig:
                out += signer.hold(sig)
            continue
        if isinstance(p, TextPart):
            item = {"text": p.text}
        elif isinstance(p, ToolCallPart):
            if names is not None:
                names[p.id] = p.name
            item = {"functionCall": with_id({"name": p.name, "args": _args_out(p.arguments)}, p.id)}
        elif isinstance(p, ImagePart) and (p.data_b64 is None or is_base64(p.data_b64)):
            item = image_out(p)
        else:
            continue  # inline bytes that are not base64 would fail the whole body
        out += signer.sign(item)
    return out + signer.flush()


# ---------------------------------------------------------------- responses

def _proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Gemini {problem}")


def raise_embedded_error(body: dict) -> None:
    err = body.get("error")
    if err is not None:
        msg = err.get("message") if isinstance(err, dict) else err
        raise UpstreamError(f"upstream reported an error: {msg if isinstance(msg, str) else 'unknown'}")


def finish_in(v: object, has_calls: bool) -> FinishReason:
    """Gemini's finishReason; reasons added after this was written count as errors."""
    if v is None:
        reason: FinishReason = "stop"
    elif not isinstance(v, str):
        _proto(f"finishReason {v!r} is not a string")
    else:
        reason = _FINISH_IN.get(v.upper(), "error")
    # Gemini says STOP beside function calls; agent loops wait for "tool_calls".
    return "tool_calls" if reason == "stop" and has_calls else reason


def _count(u: dict, key: str) -> int:
    v = u.get(key)
    if v is None:
        return 0
    if not _is_int(v) or v < 0:
        _proto(f"usageMetadata.{key} must be a non-negative integer")
    return v


def usage_in(u: object) -> Usage:
    """Gemini counts the prompt with cached tokens in it and thoughts beside the
    candidates; canonical output includes reasoning, as OpenAI's does."""
    if not isinstance(u, dict):
        _proto("usageMetadata must be an object")
    prompt = _count(u, "promptTokenCount") + _count(u, "toolUsePromptTokenCount")
    thoughts = _count(u, "thoughtsTokenCount")
    return Usage(input_tokens=prompt,
                 output_tokens=_count(u, "candidatesTokenCount") + thoughts,
                 cached_input_tokens=min(_count(u, "cachedContentTokenCount"), prompt),
                 reasoning_tokens=thoughts)


def usage_out(u: Usage) -> dict:
    return {"promptTokenCount": u.input_tokens,
            "candidatesTokenCount": max(0, u.output_tokens - u.reasoning_tokens),
            "totalTokenCount": u.total_tokens,
            "cachedContentTokenCount": u.cached_input_tokens,
            "thoughtsTokenCount": u.reasoning_tokens}


def upstream_part(p: object, where: str, call_index: int) -> list[Part]:
    """One part of an upstream candidate; ``call_index`` numbers id-less calls."""
    if not isinstance(p, dict):
        _proto(f"{where} must be an object")
    sig = p.get("thoughtSignature")
    if sig is not None and not isinstance(sig, str):
        _proto(f"{where}.thoughtSignature must be a string")
    lead: list[Part] = [ThinkingPart("", sig)] if sig else []
    text = p.get("text")
    if text is not None:
        if not isinstance(text, str):
            _proto(f"{where}.text must be a string")
        if p.get("thought") is True:
            return [ThinkingPart(text, sig)] if text or sig else []
        return lead + ([TextPart(text)] if text else [])
    fc = p.get("functionCall")
    if fc is not None:
        name = fc.get("name") if isinstance(fc, dict) else None
        args = fc.get("args") if isinstance(fc, dict) else None
        call_id = fc.get("id") if isinstance(fc, dict) else None
        if not isinstance(name, str) or not name or not isinstance(args, (dict, type(None))) \
                or not isinstance(call_id, (str, type(None))):
            _proto(f"{where}.functionCall needs a name, an object of args and a string id")
        return lead + [ToolCallPart(call_id or f"call_{call_index}", name, dumps(args or {}))]
    for kind in ("executableCode", "codeExecutionResult"):
        v = p.get(kind)
        if isinstance(v, dict):
            return lead + [TextPart(render_code(kind, v))]
    blob = p.get("inlineData")
    if isinstance(blob, dict) and isinstance(blob.get("data"), str) and is_base64(blob["data"]) \
            and image_type(blob.get("mimeType")):
        return lead + [ImagePart(data_b64=blob["data"], media_type=blob["mimeType"])]
    # Anything else (a kind newer than this codec) has no canonical home.
    return lead


def candidate_of(body: dict) -> dict | None:
    """Candidate 0 of a response or chunk (n=1 is all we serve), or None."""
    cands = body.get("candidates")
    if cands is None:
        return None
    if not isinstance(cands, list):
        _proto("candidates must be an array")
    for cand in cands:
        if not isinstance(cand, dict):
            _proto("candidate must be an object")
        if cand.get("index", 0) in (0, None):
            return cand
    return None


def candidate_parts(cand: dict) -> list:
    content = cand.get("content")
    if content is None:
        return []  # a blocked candidate carries no content
    if not isinstance(content, dict):
        _proto("candidate content must be an object")
    parts = content.get("parts")
    if parts is None:
        return []
    if not isinstance(parts, list):
        _proto("candidate content.parts must be an array")
    return parts


def blocked(body: dict) -> bool:
    fb = body.get("promptFeedback")
    return isinstance(fb, dict) and fb.get("blockReason") not in (None, "BLOCKED_REASON_UNSPECIFIED")


def head(body: dict) -> tuple[str, str]:
    rid, model = body.get("responseId", ""), body.get("modelVersion", "")
    if not isinstance(rid, str) or not isinstance(model, str):
        _proto("responseId and modelVersion must be strings")
    return rid, model


def to_canonical_response(body: object) -> Response:
    """Decode an upstream's non-streamed GenerateContentResponse."""
    if not isinstance(body, dict):
        _proto("response is not a JSON object")
    raise_embedded_error(body)
    rid, model = head(body)
    usage = body.get("usageMetadata")
    usage_value = None if usage is None else usage_in(usage)
    cand = candidate_of(body)
    if cand is None:
        if blocked(body):
            return Response(id=rid, model=model, message=Message("assistant", ()),
                            finish_reason="content_filter", usage=usage_value)
        _proto("response has no candidates")
    parts: list[Part] = []
    calls = 0
    for j, p in enumerate(candidate_parts(cand)):
        got = upstream_part(p, f"content.parts[{j}]", calls)
        calls += sum(isinstance(x, ToolCallPart) for x in got)
        parts.extend(got)
    return Response(id=rid, model=model, message=Message("assistant", tuple(parts)),
                    finish_reason=finish_in(cand.get("finishReason"), calls > 0),
                    usage=usage_value)


def from_canonical_response(resp: Response, model: str) -> dict:
    """Encode a client's GenerateContentResponse; ``model`` is the public id."""
    content: dict[str, Any] = {"role": "model"}
    parts = model_parts_out(resp.message.parts)
    if parts:
        content["parts"] = parts
    out: dict[str, Any] = {
        "candidates": [{"content": content, "finishReason": _FINISH_OUT[resp.finish_reason],
                        "index": 0}],
        "modelVersion": model, "responseId": resp.id,
    }
    if resp.usage is not None:
        out["usageMetadata"] = usage_out(resp.usage)
    return out


# ---------------------------------------------------------------- streams

class StreamDecoder:
    """Upstream SSE chunks (each a whole GenerateContentResponse, parsed) -> events.

    Gemini streams whole parts, so a functionCall opens and completes at once: one
    ToolCallStart and one ToolCallDelta with all of its arguments. Every chunk repeats
    usageMetadata with running counts; it is held and sent once, with the finish (or at
    close when no finish came), so dialects that emit a usage chunk per UsageEvent emit
    one.
    """

    def __init__(self) -> None:
        self._started = False
        self._finish: FinishReason | None = None
        self._calls = 0                    # tool calls opened so far = the next index
        self._usage: Usage | None = None
        self._usage_sent = True

    @property
    def finished(self) -> bool:
        """Whether a finishReason arrived; False after close() means the stream was cut."""
        return self._finish is not None

    def feed(self, chunk: object) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            _proto("stream chunk is not a JSON object")
        raise_embedded_error(chunk)
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(StreamStart(*head(chunk)))
        cand = candidate_of(chunk)
        reason: object = None
        if cand is not None:
            content: list[StreamEvent] = []
            for j, p in enumerate(candidate_parts(cand)):
                content.extend(self._events(upstream_part(p, f"content.parts[{j}]", self._calls)))
            if self._finish is not None:
                if any(not isinstance(ev, ThinkingDelta) or ev.text for ev in content):
                    _proto("stream sent content after its finishReason")
                # A bare signature this late has no part left to belong to.
                content = []
            out.extend(content)
            reason = cand.get("finishReason")
        if self._finish is None and (reason is not None or (cand is None and blocked(chunk))):
            self._finish = finish_in(reason, self._calls > 0) if reason is not None \
                else "content_filter"
            out.append(Finish(self._finish))
        usage = chunk.get("usageMetadata")
        if usage is not None:
            self._usage, self._usage_sent = usage_in(usage), False
        if self._finish is not None:
            out.extend(self._flush_usage())
        return out

    def close(self) -> list[StreamEvent]:
        return self._flush_usage()

    def _flush_usage(self) -> list[StreamEvent]:
        if self._usage is None or self._usage_sent:
            return []
        self._usage_sent = True
        return [UsageEvent(self._usage)]

    def _events(self, parts: list[Part]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for p in parts:
            if isinstance(p, ThinkingPart):
                out.append(ThinkingDelta(p.text, p.signature))
            elif isinstance(p, TextPart):
                out.append(TextDelta(p.text))
            elif isinstance(p, ToolCallPart):
                index, self._calls = self._calls, self._calls + 1
                out += [ToolCallStart(index, p.id, p.name), ToolCallDelta(index, p.arguments)]
            # Images have no stream event; an inline image in a stream is dropped.
        return out


@dataclass
class _PendingCall:
    """A client-bound call whose arguments are still arriving, per canonical index."""
    id: str
    name: str
    signature: str | None
    args: list[str] = field(default_factory=list)


class StreamEncoder:
    """Canonical events -> client GenerateContentResponse chunks.

    Gemini streams whole parts: text and thoughts go out as they come, tool calls are
    held per index until their arguments are complete and go out in the final chunk,
    which ``end()`` writes with finishReason and usageMetadata (the last usage seen).
    The final chunk always has a part (an empty text when nothing else is left),
    because SDK users concatenate ``chunk.text`` and Gemini's own last chunk looks so.
    """

    def __init__(self, id: str, model: str) -> None:
        self.id, self.model = id, model
        self._calls: dict[int, _PendingCall] = {}
        self._signer = _Signer()
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None

    def encode(self, ev: StreamEvent) -> list[dict]:
        if isinstance(ev, TextDelta) and ev.text:
            return [self._chunk(self._signer.sign({"text": ev.text}))]
        if isinstance(ev, ThinkingDelta):
            sig = signature_out(ev.signature)
            if ev.text:
                return [self._chunk(self._signer.sign({"text": ev.text, "thought": True}, sig))]
            carrier = self._signer.hold(sig) if sig else []
            return [self._chunk(carrier)] if carrier else []
        if isinstance(ev, ToolCallStart):
            self._calls[ev.index] = _PendingCall(ev.id, ev.name, self._signer.take())
        elif isinstance(ev, ToolCallDelta) and ev.index in self._calls:
            self._calls[ev.index].args.append(ev.arguments)
        elif isinstance(ev, Finish):
            self._finish = ev.reason
        elif isinstance(ev, UsageEvent):
            self._usage = ev.usage
        return []

    def end(self) -> list[dict]:
        """The final chunk, once the stream is complete."""
        parts = []
        for i in sorted(self._calls):
            call = self._calls[i]
            part = model_parts_out((ToolCallPart(call.id, call.name, "".join(call.args)),))[0]
            if call.signature:
                part["thoughtSignature"] = call.signature
            parts.append(part)
        self._calls.clear()
        parts += self._signer.flush()
        if not parts:
            parts.append({"text": ""})
        chunk = self._chunk(parts, self._finish)
        if self._usage is not None:
            chunk["usageMetadata"] = usage_out(self._usage)
        return [chunk]

    def _chunk(self, parts: list[dict], finish: FinishReason | None = None) -> dict:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            cand["finishReason"] = _FINISH_OUT[finish]
        return {"candidates": [cand], "modelVersion": self.model, "responseId": self.id}
