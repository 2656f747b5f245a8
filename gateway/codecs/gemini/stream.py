"""Gemini streamGenerateContent chunks <-> canonical stream events (each chunk is a
whole GenerateContentResponse; the shared helpers live in ``response`` and ``parts``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.canonical import (
    Finish, FinishReason, Part, StreamEvent, StreamStart, TextDelta, TextPart,
    ThinkingDelta, ThinkingPart, ToolCallDelta, ToolCallPart, ToolCallStart, Usage,
    UsageEvent,
)
from gateway.codecs.gemini.parts import Signer, model_parts_out, signature_out
from gateway.codecs.gemini.response import (
    FINISH_OUT, blocked, candidate_of, candidate_parts, head, finish_in, proto,
    raise_embedded_error, upstream_part, usage_in, usage_out,
)

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
            proto("stream chunk is not a JSON object")
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
                    proto("stream sent content after its finishReason")
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
        self._signer = Signer()
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
            cand["finishReason"] = FINISH_OUT[finish]
        return {"candidates": [cand], "modelVersion": self.model, "responseId": self.id}

