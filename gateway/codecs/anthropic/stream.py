"""Anthropic Messages stream events <-> canonical stream events.

The block and usage helpers shared with whole responses live in ``response``. The Anthropic stream is a sequence of typed events (the type is inside each
event's JSON, so the SSE ``event:`` line adds nothing the decoder needs):

    message_start, ping, then per content block content_block_start,
    content_block_delta..., content_block_stop, then message_delta (stop reason and
    cumulative usage), message_stop; ``error`` may arrive at any point.

Usage is split across the stream: input counts arrive in message_start, output counts
(and, from newer API versions, final input counts) in message_delta. The decoder folds
them into one UsageEvent when message_delta arrives; the encoder does the reverse.
Per-block state is explicit in each class, as in h11's Connection.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NoReturn

from gateway.canonical import (
    Finish,
    FinishReason,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageEvent,
)
from gateway.codecs.anthropic.request import REDACTED_PREFIX
from gateway.codecs.anthropic.response import (
    FINISH_OUT, count, finish_in, raise_if_error, usage_out,
)
from gateway.codecs.fields import is_int as _is_int
from gateway.errors import UpstreamProtocolError

Frame = tuple[str, dict]   # (SSE event name, event data), the event name equal to data["type"]

_USAGE_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
               "output_tokens")


def _proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Anthropic stream {problem}")


@dataclass(slots=True)
class _Block:
    """One upstream content block in flight: what it holds, and its tool call index."""
    kind: str           # text | thinking | tool_use | ignored (server tool blocks and newer types)
    tool_index: int = -1
    open: bool = True


class StreamDecoder:
    """Upstream stream events (parsed JSON) -> canonical events.

    ``finished`` is True once message_stop arrived; a stream that ends before that was
    cut, whatever it delivered. Event and delta types we do not know are skipped, as
    Anthropic's versioning policy asks of clients; blocks of unknown type (server tool
    blocks never arise, since requests carrying server tools are refused) are skipped
    whole.
    """

    def __init__(self) -> None:
        self._started = False
        self._stopped = False
        self._finish: FinishReason | None = None
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._usage: dict[str, int] = {}

    @property
    def finished(self) -> bool:
        return self._stopped

    def feed(self, data: object) -> list[StreamEvent]:
        if not isinstance(data, dict):
            _proto("event is not a JSON object")
        raise_if_error(data)
        kind = data.get("type")
        if not isinstance(kind, str):
            _proto("event has no type")
        if kind == "ping":
            return []
        if self._stopped:
            _proto(f"sent {kind} after message_stop")
        if kind == "message_start":
            return self._message_start(data)
        if kind not in ("content_block_start", "content_block_delta", "content_block_stop",
                        "message_delta", "message_stop"):
            return []
        if not self._started:
            _proto(f"sent {kind} before message_start")
        out: list[StreamEvent] = []
        if kind == "message_delta":
            self._message_delta(data, out)
        elif kind == "message_stop":
            self._stopped = True
            if self._finish is None:
                self._finish = "stop"
                out.append(Finish("stop"))
        else:
            if self._finish is not None:
                _proto("sent content after its stop reason")
            index = data.get("index")
            if not _is_int(index) or index < 0:
                _proto(f"{kind} needs a non-negative integer index")
            if kind == "content_block_start":
                self._block_start(index, data.get("content_block"), out)
            else:
                block = self._blocks.get(index)
                if block is None or not block.open:
                    _proto(f"{kind} for block {index}, which is not open")
                if kind == "content_block_stop":
                    block.open = False
                else:
                    self._delta(block, data.get("delta"), out)
        return out

    def close(self) -> list[StreamEvent]:
        return []

    def _message_start(self, data: dict) -> list[StreamEvent]:
        if self._started:
            _proto("sent message_start twice")
        msg = data.get("message")
        if not isinstance(msg, dict):
            _proto("message_start needs a message object")
        rid, model = msg.get("id"), msg.get("model")
        if not isinstance(rid, str) or not isinstance(model, str):
            _proto("message_start id and model must be strings")
        self._absorb_usage(msg.get("usage"))
        self._started = True
        return [StreamStart(rid, model)]

    def _absorb_usage(self, u: object) -> None:
        if u is None:
            return
        if not isinstance(u, dict):
            _proto("usage must be an object")
        for key in _USAGE_KEYS:
            if u.get(key) is not None:
                # Counts are cumulative: a later event's value replaces an earlier one.
                self._usage[key] = count(u, key, "usage", True)

    def _message_delta(self, data: dict, out: list[StreamEvent]) -> None:
        delta = data.get("delta")
        if delta is None:
            delta = {}
        if not isinstance(delta, dict):
            _proto("message_delta.delta must be an object")
        if self._finish is None:
            self._finish = finish_in(delta.get("stop_reason"))
            out.append(Finish(self._finish))
        usage = data.get("usage")
        if usage is None:
            return  # usage is mandatory on the real API; without it the meter estimates
        self._absorb_usage(usage)
        u = self._usage
        read = u.get("cache_read_input_tokens", 0)
        out.append(UsageEvent(Usage(
            input_tokens=u.get("input_tokens", 0) + read + u.get("cache_creation_input_tokens", 0),
            cached_input_tokens=read, output_tokens=u.get("output_tokens", 0))))

    def _block_start(self, index: int, cb: object, out: list[StreamEvent]) -> None:
        if index in self._blocks:
            _proto(f"started block {index} twice")
        if not isinstance(cb, dict) or not isinstance(cb.get("type"), str):
            _proto("content_block_start needs a content_block with a type")
        kind = cb["type"]
        if kind == "text":
            text = cb.get("text", "")
            if not isinstance(text, str):
                _proto("text block text must be a string")
            if text:
                out.append(TextDelta(text))
        elif kind == "thinking":
            text, sig = cb.get("thinking", ""), cb.get("signature")
            if not isinstance(text, str) or (sig is not None and not isinstance(sig, str)):
                _proto("thinking block thinking and signature must be strings")
            if text or sig:
                out.append(ThinkingDelta(text, sig or None))
        elif kind == "redacted_thinking":
            data = cb.get("data")
            if not isinstance(data, str):
                _proto("redacted_thinking block data must be a string")
            out.append(ThinkingDelta("", REDACTED_PREFIX + data))
            kind = "ignored"   # it has no deltas
        elif kind == "tool_use":
            call_id, name, args = cb.get("id"), cb.get("name"), cb.get("input")
            if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
                _proto("tool_use block needs a string id and name")
            if args is not None and not isinstance(args, dict):
                _proto("tool_use block input must be an object")
            self._blocks[index] = _Block(kind, self._tools)
            out.append(ToolCallStart(self._tools, call_id, name))
            if args:  # the real API streams input as deltas after an empty {}
                out.append(ToolCallDelta(self._tools, json.dumps(args, separators=(",", ":"))))
            self._tools += 1
            return
        else:
            kind = "ignored"
        self._blocks[index] = _Block(kind)

    def _delta(self, block: _Block, delta: object, out: list[StreamEvent]) -> None:
        if not isinstance(delta, dict) or not isinstance(delta.get("type"), str):
            _proto("content_block_delta needs a delta with a type")
        if block.kind == "ignored":
            return
        kind = delta["type"]
        expected = {"text_delta": ("text", "text"), "input_json_delta": ("tool_use", "partial_json"),
                    "thinking_delta": ("thinking", "thinking"),
                    "signature_delta": ("thinking", "signature")}.get(kind)
        if expected is None:
            return  # citations_delta and delta types newer than this codec
        if expected[0] != block.kind:
            _proto(f"sent {kind} into a {block.kind} block")
        value = delta.get(expected[1])
        if not isinstance(value, str):
            _proto(f"{kind}.{expected[1]} must be a string")
        if not value:
            return
        if kind == "text_delta":
            out.append(TextDelta(value))
        elif kind == "input_json_delta":
            out.append(ToolCallDelta(block.tool_index, value))
        elif kind == "thinking_delta":
            out.append(ThinkingDelta(value))
        else:
            out.append(ThinkingDelta("", value))


class StreamEncoder:
    """Canonical events -> client stream frames, in Anthropic's exact event order.

    ``id`` and ``model`` are the gateway's own; ``input_tokens`` (the prompt as the
    gateway counted it) fills message_start, where Anthropic reports input usage before
    any output. Blocks open and close in sequence: a new kind of content, a new tool
    call or Finish closes the open block. A tool call whose arguments arrive after a
    later block opened (only upstreams that interleave parallel calls do this) still
    gets them, under its own index after its stop; the official SDKs accumulate by index.

    message_delta and message_stop come from ``close``, because usage may follow the
    Finish event: call it once the canonical stream has ended. ``usage`` there is the
    fallback when the stream carried none (the gateway passes what it billed); with
    neither, message_delta goes without usage.
    """

    def __init__(self, id: str, model: str, input_tokens: int = 0) -> None:
        self.id, self.model, self.input_tokens = id, model, input_tokens
        self._started = False
        self._closed = False
        self._open: tuple[int, str] | None = None      # (block index, kind)
        self._next = 0
        self._tool_blocks: dict[int, int] = {}         # canonical tool index -> block index
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._signed = False                           # the open thinking block has its signature

    def encode(self, ev: StreamEvent) -> list[Frame]:
        if self._closed:
            return []
        out: list[Frame] = []
        if not self._started:
            self._start(out)
        if isinstance(ev, TextDelta) and ev.text:
            index = self._ensure("text", {"type": "text", "text": ""}, out)
            out.append(_delta(index, {"type": "text_delta", "text": ev.text}))
        elif isinstance(ev, ThinkingDelta):
            self._thinking(ev, out)
        elif isinstance(ev, ToolCallStart):
            index = self._begin("tool_use", {"type": "tool_use", "id": ev.id, "name": ev.name,
                                             "input": {}}, out)
            self._tool_blocks[ev.index] = index
        elif isinstance(ev, ToolCallDelta) and ev.arguments and ev.index in self._tool_blocks:
            out.append(_delta(self._tool_blocks[ev.index],
                              {"type": "input_json_delta", "partial_json": ev.arguments}))
        elif isinstance(ev, Finish):
            self._stop_open(out)
            self._finish = ev.reason
        elif isinstance(ev, UsageEvent):
            self._usage = ev.usage
        return out

    def close(self, usage: Usage | None = None) -> list[Frame]:
        if self._closed:
            return []
        out: list[Frame] = []
        if not self._started:
            self._start(out)
        self._stop_open(out)
        self._closed = True
        frame: dict[str, Any] = {"type": "message_delta", "delta": {
            "stop_reason": FINISH_OUT[self._finish or "stop"], "stop_sequence": None}}
        final = self._usage or usage
        if final is not None:
            frame["usage"] = usage_out(final)
        out.append(("message_delta", frame))
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    def _start(self, out: list[Frame]) -> None:
        self._started = True
        out.append(("message_start", {"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}))
        out.append(("ping", {"type": "ping"}))

    def _thinking(self, ev: ThinkingDelta, out: list[Frame]) -> None:
        sig = ev.signature
        if sig is not None and sig.startswith(REDACTED_PREFIX) and not ev.text:
            self._begin("redacted_thinking", {"type": "redacted_thinking",
                                              "data": sig[len(REDACTED_PREFIX):]}, out)
            self._stop_open(out)
            return
        if not ev.text and not sig:
            return
        if self._signed and ev.text:
            self._stop_open(out)  # a signature ends its block: more thinking is a new block
        index = self._ensure("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
        if ev.text:
            out.append(_delta(index, {"type": "thinking_delta", "thinking": ev.text}))
        if sig:
            out.append(_delta(index, {"type": "signature_delta", "signature": sig}))
            self._signed = True

    def _ensure(self, kind: str, block: dict, out: list[Frame]) -> int:
        if self._open is not None and self._open[1] == kind:
            return self._open[0]
        return self._begin(kind, block, out)

    def _begin(self, kind: str, block: dict, out: list[Frame]) -> int:
        self._stop_open(out)
        index, self._next = self._next, self._next + 1
        self._open = (index, kind)
        out.append(("content_block_start", {"type": "content_block_start", "index": index,
                                            "content_block": block}))
        return index

    def _stop_open(self, out: list[Frame]) -> None:
        if self._open is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._open[0]}))
            self._open = None
        self._signed = False


def _delta(index: int, delta: dict) -> Frame:
    return ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
