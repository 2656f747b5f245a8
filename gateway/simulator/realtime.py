"""The simulator's OpenAI Realtime upstream: the GA event protocol over one WebSocket.

`RealtimeSim` is a small state machine: `handle(event)` takes one client event and says
what to send back; `response_events(...)` lists one response's events, which the driver
(`serve_realtime`) sends with the fault directive's pacing and stops early on
`response.cancel`. Replies come from the simulator's core (simulator/core.py) applied to
the conversation so far, so text, tool calls and `[[sim ...]]` directives behave as on
the HTTP routes.

Audio is pcm16 mono at 24 kHz both ways. The simulator cannot hear: a committed audio
buffer enters the conversation as the text `(audio N ms)`. Its spoken reply is a quiet
tone, 20 ms per character of the transcript. Usage is honest by these rules:
text tokens by the tokenizer; one audio token per 100 ms (4800 bytes) of audio; input
tokens of the conversation that an earlier response already read count as cached (a
prompt cache would have them).
"""
from __future__ import annotations

import base64
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import trio

from gateway import canonical as c
from gateway import tokenizer
from gateway.simulator.core import SimOptions, plan
from gateway.simulator.faults import parse_fault, strip_directives
from gateway.simulator.inproc import chunk_delay

AUDIO_BYTES_PER_TOKEN = 4800      # 100 ms of 24 kHz pcm16
AUDIO_BYTES_PER_CHAR = 960        # 20 ms of spoken reply per transcript character


def audio_tokens(n_bytes: int) -> int:
    return math.ceil(n_bytes / AUDIO_BYTES_PER_TOKEN)


def _tone(n_bytes: int) -> bytes:
    # A deterministic low square wave: real PCM a client can play, cheap to make.
    return (b"\x00\x04" * 20 + b"\x00\xfc" * 20) * (n_bytes // 80) + b"\x00" * (n_bytes % 80)


@dataclass
class Item:
    id: str
    raw: dict[str, Any]
    text: str                    # what the model "reads" of it
    audio_bytes: int = 0


@dataclass
class RealtimeSim:
    model: str
    options: SimOptions = field(default_factory=SimOptions)
    session: dict[str, Any] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    cached_upto: int = 0          # items an earlier response has read
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.session = {"id": self.id("sess"), "object": "realtime.session", "type": "realtime",
                        "model": self.model, "output_modalities": ["audio"],
                        "max_output_tokens": "inf", "tools": [], "instructions": ""}

    def id(self, prefix: str) -> str:
        return f"{prefix}_sim{next(self._ids):06d}"

    def ev(self, type_: str, **fields: Any) -> dict[str, Any]:
        return {"type": type_, "event_id": self.id("event"), **fields}

    def error(self, message: str, code: str = "invalid_request_error") -> dict[str, Any]:
        return self.ev("error", error={"type": "invalid_request_error", "code": code,
                                       "message": message})

    def _add(self, item: Item) -> list[dict[str, Any]]:
        previous = self.items[-1].id if self.items else None
        self.items.append(item)
        return [self.ev("conversation.item.added", previous_item_id=previous, item=item.raw),
                self.ev("conversation.item.done", previous_item_id=previous, item=item.raw)]

    def handle(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The immediate answer to one client event (response.create is the driver's)."""
        kind = event.get("type")
        if kind == "session.update":
            update = event.get("session")
            if not isinstance(update, dict):
                return [self.error("session must be an object")]
            self.session.update({k: v for k, v in update.items() if k != "type"})
            return [self.ev("session.updated", session=self.session)]
        if kind == "input_audio_buffer.append":
            try:
                self.audio += base64.b64decode(event.get("audio", ""), validate=True)
            except (ValueError, TypeError):
                return [self.error("audio must be base64-encoded pcm16")]
            return []
        if kind == "input_audio_buffer.clear":
            self.audio.clear()
            return [self.ev("input_audio_buffer.cleared")]
        if kind == "input_audio_buffer.commit":
            if not self.audio:
                return [self.error("the input audio buffer is empty", "input_audio_buffer_commit_empty")]
            n = len(self.audio)
            item_id = self.id("item")
            raw = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                   "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
            self.audio.clear()
            previous = self.items[-1].id if self.items else None
            return [self.ev("input_audio_buffer.committed", previous_item_id=previous,
                            item_id=item_id),
                    *self._add(Item(item_id, raw, f"(audio {n * 1000 // 48000} ms)", n))]
        if kind == "conversation.item.create":
            raw = event.get("item")
            if not isinstance(raw, dict):
                return [self.error("item must be an object")]
            raw = dict(raw)
            if not isinstance(raw.get("content", []), list):
                return [self.error("item.content must be an array")]
            raw.setdefault("id", self.id("item"))
            raw.setdefault("object", "realtime.item")
            return self._add(Item(raw["id"], raw, _item_text(raw)))
        if kind in ("response.create", "response.cancel"):
            return []
        return [self.error(f"unknown event type {kind!r}")]

    # ------------------------------------------------------------ responses

    def _request(self, response: dict[str, Any]) -> c.Request:
        messages: list[c.Message] = []
        instructions = response.get("instructions") or self.session.get("instructions")
        if instructions:
            messages.append(c.Message("system", (c.TextPart(instructions),)))
        for item in self.items:
            raw = item.raw
            if raw.get("type") == "function_call":
                messages.append(c.Message("assistant", (c.ToolCallPart(
                    raw.get("call_id", item.id), raw.get("name", "tool"),
                    raw.get("arguments", "{}")),)))
            elif raw.get("type") == "function_call_output":
                messages.append(c.Message("tool", (c.ToolResultPart(
                    raw.get("call_id", ""), (c.TextPart(str(raw.get("output", ""))),)),)))
            else:
                role = "assistant" if raw.get("role") == "assistant" else "user"
                messages.append(c.Message(role, (c.TextPart(item.text or " "),)))
        if not messages or messages[-1].role == "system":
            messages.append(c.Message("user", (c.TextPart(" "),)))
        tools = tuple(c.Tool(t["name"], t.get("description"), t.get("parameters") or
                             {"type": "object", "properties": {}})
                      for t in (response.get("tools") or self.session.get("tools") or [])
                      if isinstance(t, dict) and t.get("name"))
        limit = response.get("max_output_tokens", self.session.get("max_output_tokens"))
        return c.Request(model=self.model, messages=tuple(messages), tools=tools,
                         max_tokens=limit if isinstance(limit, int) else None)

    def response_events(self, response: dict[str, Any]) -> tuple[list[dict[str, Any]], float,
                                                                  dict[str, Any]]:
        """One response's events (response.done last), the pause between deltas, and the
        usage the response.done carries (the driver recomputes it if cut short)."""
        req = self._request(response)
        fault = parse_fault(req)
        p = plan(req)
        modalities = (response.get("output_modalities") or response.get("modalities")
                      or self.session.get("output_modalities") or ["audio"])
        audio = "audio" in modalities
        rid = self.id("resp")
        out: list[dict[str, Any]] = [self.ev("response.created", response={
            "id": rid, "object": "realtime.response", "status": "in_progress", "output": []})]
        output: list[dict[str, Any]] = []
        common = {"response_id": rid, "output_index": 0}
        for index, call in enumerate(p.tool_calls):
            item = {"id": self.id("item"), "object": "realtime.item", "type": "function_call",
                    "status": "completed", "call_id": call.id, "name": call.name,
                    "arguments": call.arguments}
            at = {**common, "output_index": index}
            out += [self.ev("response.output_item.added", **at, item={**item, "arguments": ""}),
                    self.ev("response.function_call_arguments.delta", **at, item_id=item["id"],
                            call_id=call.id, delta=call.arguments),
                    self.ev("response.function_call_arguments.done", **at, item_id=item["id"],
                            call_id=call.id, name=call.name, arguments=call.arguments),
                    self.ev("response.output_item.done", **at, item=item)]
            output.append(item)
        if p.text or not p.tool_calls:
            text = strip_directives(p.text)
            item_id = self.id("item")
            part = {"type": "output_audio", "transcript": text} if audio else \
                {"type": "output_text", "text": text}
            at = {**common, "item_id": item_id, "content_index": 0}
            out += [self.ev("response.output_item.added", **common, item={
                        "id": item_id, "object": "realtime.item", "type": "message",
                        "role": "assistant", "status": "in_progress", "content": []}),
                    self.ev("response.content_part.added", **at,
                            part={**part, "transcript" if audio else "text": ""})]
            n = max(1, self.options.chunk_chars if fault.chunk_chars is None else fault.chunk_chars)
            for chunk in (text[i:i + n] for i in range(0, len(text), n)):
                if audio:
                    out.append(self.ev("response.output_audio.delta", **at, delta=base64.b64encode(
                        _tone(len(chunk) * AUDIO_BYTES_PER_CHAR)).decode()))
                    out.append(self.ev("response.output_audio_transcript.delta", **at, delta=chunk))
                else:
                    out.append(self.ev("response.output_text.delta", **at, delta=chunk))
            out += ([self.ev("response.output_audio.done", **at),
                     self.ev("response.output_audio_transcript.done", **at, transcript=text)]
                    if audio else [self.ev("response.output_text.done", **at, text=text)])
            item = {"id": item_id, "object": "realtime.item", "type": "message",
                    "role": "assistant", "status": "completed", "content": [part]}
            out += [self.ev("response.content_part.done", **at, part=part),
                    self.ev("response.output_item.done", **common, item=item)]
            output.append(item)
        usage = self.usage(req, out)
        out.append(self.ev("response.done", response={
            "id": rid, "object": "realtime.response", "status": "completed", "output": output,
            "usage": usage}))
        return out, chunk_delay(self.options, fault), usage

    def usage(self, req: c.Request, sent: list[dict[str, Any]]) -> dict[str, Any]:
        """Usage of a response whose events `sent` went out (all of them, or a cut prefix)."""
        text_in = tokenizer.count_request(req)
        cached = sum(tokenizer.count_text(i.text) for i in self.items[:self.cached_upto]
                     if not i.audio_bytes)
        audio_in = sum(audio_tokens(i.audio_bytes) for i in self.items)
        text_out = audio_bytes = 0
        for e in sent:
            t = e["type"]
            if t in ("response.output_text.delta", "response.output_audio_transcript.delta",
                     "response.function_call_arguments.delta"):
                text_out += tokenizer.count_text(e["delta"])
            elif t == "response.output_audio.delta":
                audio_bytes += len(base64.b64decode(e["delta"]))
        audio_out = audio_tokens(audio_bytes)
        return {"total_tokens": text_in + audio_in + text_out + audio_out,
                "input_tokens": text_in + audio_in, "output_tokens": text_out + audio_out,
                "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in,
                                        "cached_tokens": min(cached, text_in)},
                "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out}}


def _item_text(raw: dict[str, Any]) -> str:
    if raw.get("type") == "function_call_output":
        return str(raw.get("output", ""))
    texts = [p.get("text") or p.get("transcript") or "" for p in raw.get("content") or ()
             if isinstance(p, dict)]
    return " ".join(t for t in texts if t)


Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any] | None]]


async def serve_realtime(sim: RealtimeSim, receive: Receive, send: Send) -> None:
    """Drive one session until the client goes (receive returns None)."""
    await send(sim.ev("session.created", session=sim.session))
    running: dict[str, Any] = {}

    async def respond(response: dict[str, Any]) -> None:
        events, pause, _ = sim.response_events(response)
        sent: list[dict[str, Any]] = []
        with trio.CancelScope() as scope:
            running["scope"] = scope
            for event in events[:-1]:
                await send(event)
                sent.append(event)
                if pause and event["type"].endswith(".delta"):
                    await trio.sleep(pause)
            await send(events[-1])
            sim.cached_upto = len(sim.items)
            return
        # Cancelled: what went out is what the usage says.
        done = events[-1]["response"]
        req = sim._request(response)
        await send(sim.ev("response.done", response={**done, "status": "cancelled",
                                                     "usage": sim.usage(req, sent)}))

    async with trio.open_nursery() as nursery:
        while True:
            event = await receive()
            if event is None:
                nursery.cancel_scope.cancel()
                return
            for reply in sim.handle(event):
                await send(reply)
            if event.get("type") == "response.create":
                running.pop("scope", None)
                nursery.start_soon(respond, dict(event.get("response") or {}))
            elif event.get("type") == "response.cancel" and "scope" in running:
                running.pop("scope").cancel()


def decode(text: str | bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
