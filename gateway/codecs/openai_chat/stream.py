"""OpenAI Chat Completions stream chunks <-> canonical stream events.

The shape helpers shared with whole responses live in ``response``. Per-index
tool-call state is explicit in each class, as in h11's Connection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.canonical import (
    Finish, FinishReason, StreamEvent, StreamStart, TextDelta, ThinkingDelta,
    ToolCallDelta, ToolCallStart, Usage, UsageEvent,
)
from gateway.codecs.fields import is_int as _is_int
from gateway.codecs.openai_chat.response import (
    FINISH_OUT, finish_in, response_head, opt_text, proto, raise_embedded_error, reasoning,
    usage_in, usage_out,
)


@dataclass(slots=True)
class _Call:
    """One upstream tool call in flight: its canonical index and upstream id."""
    index: int
    id: str


class StreamDecoder:
    """Upstream chunks (parsed JSON, ``[DONE]`` already stripped) -> canonical events.

    Tool calls are tracked per upstream ``index``. Some compatible servers omit the
    index or reuse 0 for every parallel call; a call id we have not seen always opens
    a new call, and a fragment with neither index nor id continues the latest one.
    """

    def __init__(self) -> None:
        self._started = False
        self._finish: FinishReason | None = None
        self._by_index: dict[int, _Call] = {}
        self._by_id: dict[str, _Call] = {}
        self._last: _Call | None = None

    @property
    def finished(self) -> bool:
        """Whether a finish_reason arrived; False after close() means the stream was cut."""
        return self._finish is not None

    def feed(self, chunk: object) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            proto("stream chunk is not a JSON object")
        raise_embedded_error(chunk)
        out: list[StreamEvent] = []
        if not self._started:
            head = response_head(chunk)
            if chunk.get("choices") in (None, []) and chunk.get("usage") is None:
                # Azure opens with a prompt_filter_results chunk whose id and model
                # are empty; the stream really starts at the first chunk with content.
                return out
            self._started = True
            out.append(StreamStart(*head))
        choices = chunk.get("choices")
        if choices is not None and not isinstance(choices, list):
            proto("chunk choices must be an array")
        for choice in choices or ():
            if not isinstance(choice, dict):
                proto("chunk choice must be an object")
            if choice.get("index", 0) == 0:  # n=1: other choices cannot exist for us
                self._choice(choice, out)
        usage = chunk.get("usage")
        if usage is not None:
            out.append(UsageEvent(usage_in(usage)))
        return out

    def close(self) -> list[StreamEvent]:
        return []

    def _choice(self, choice: dict, out: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        if not isinstance(delta, dict):
            proto("chunk delta must be an object")
        before = len(out)
        if thinking := reasoning(delta, "delta"):
            out.append(ThinkingDelta(thinking))
        if text := opt_text(delta, "content", "delta") or opt_text(delta, "refusal", "delta"):
            out.append(TextDelta(text))
        calls = delta.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            proto("delta.tool_calls must be an array")
        for frag in calls or ():
            self._tool_fragment(frag, out)
        if self._finish is not None and len(out) > before:
            proto("stream sent content after its finish_reason")
        reason = choice.get("finish_reason")
        if reason is not None and self._finish is None:
            self._finish = finish_in(reason, bool(self._by_id))
            out.append(Finish(self._finish))

    def _tool_fragment(self, frag: object, out: list[StreamEvent]) -> None:
        if not isinstance(frag, dict):
            proto("delta.tool_calls entry must be an object")
        index, call_id, fn = frag.get("index"), frag.get("id"), frag.get("function")
        if fn is None:
            fn = {}
        if (index is not None and (not _is_int(index) or index < 0)) or \
                (call_id is not None and not isinstance(call_id, str)) or not isinstance(fn, dict):
            proto("delta.tool_calls entry has a bad index, id or function")
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            proto("delta.tool_calls function.arguments must be a string")
        if call_id and call_id not in self._by_id:
            call = self._open(call_id, fn.get("name"), out)
        elif call_id:
            call = self._by_id[call_id]
        elif index is not None and index in self._by_index:
            call = self._by_index[index]
        elif index is None and self._last is not None:
            call = self._last
        else:
            proto("a tool call began without an id")
        if index is not None:
            self._by_index[index] = call
        self._last = call
        if args:
            out.append(ToolCallDelta(call.index, args))

    def _open(self, call_id: str, name: object, out: list[StreamEvent]) -> _Call:
        if not isinstance(name, str) or not name:
            proto(f"tool call {call_id!r} began without a function name")
        call = _Call(len(self._by_id), call_id)
        self._by_id[call_id] = call
        out.append(ToolCallStart(call.index, call_id, name))
        return call


class StreamEncoder:
    """Canonical events -> client ``chat.completion.chunk`` dicts.

    ``id``, ``model`` and ``created`` are the gateway's own (the public model id, not
    the upstream's), so StreamStart's values are not copied. ThinkingDelta goes out as
    ``delta.reasoning_content``, the extension DeepSeek and vLLM clients read.
    """

    def __init__(self, id: str, model: str, created: int, include_usage: bool) -> None:
        self.id, self.model, self.created = id, model, created
        self.include_usage = include_usage
        self._started = False

    def encode(self, ev: StreamEvent) -> list[dict]:
        out: list[dict] = []
        if not self._started and not isinstance(ev, UsageEvent):
            # OpenAI's first chunk always names the role, whatever comes first.
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}))
        if isinstance(ev, TextDelta) and ev.text:
            out.append(self._chunk({"content": ev.text}))
        elif isinstance(ev, ThinkingDelta) and ev.text:
            out.append(self._chunk({"reasoning_content": ev.text}))
        elif isinstance(ev, ToolCallStart):
            out.append(self._chunk({"tool_calls": [{
                "index": ev.index, "id": ev.id, "type": "function",
                "function": {"name": ev.name, "arguments": ""}}]}))
        elif isinstance(ev, ToolCallDelta) and ev.arguments:
            out.append(self._chunk({"tool_calls": [{
                "index": ev.index, "function": {"arguments": ev.arguments}}]}))
        elif isinstance(ev, Finish):
            out.append(self._chunk({}, FINISH_OUT[ev.reason]))
        elif isinstance(ev, UsageEvent) and self.include_usage:
            out.append(self.usage_chunk(ev.usage))
        return out

    def usage_chunk(self, usage: Usage) -> dict:
        """The final ``choices: []`` chunk that stream_options.include_usage asks for."""
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage_out(usage)}

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        chunk: dict[str, Any] = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does on every chunk but the usage one
        return chunk
