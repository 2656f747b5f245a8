"""The simulator's Gemini Live upstream: BidiGenerateContent over one WebSocket.

`LiveSim` is a small state machine: `handle(message)` takes one client message and
returns the turn to answer, if the message completes one (clientContent with
turnComplete, a manual audio activity ending, a toolResponse); `turn_messages` lists
the answer's server messages. Replies come from the simulator's core (simulator/core.py)
on the conversation so far, so `say:`, tool calls and `[[sim ...]]` directives behave
as on the HTTP routes.

The session must start with `setup` (answered `setupComplete`); anything before it
closes the socket with 1007, as the Live API does. Audio input is pcm16 16 kHz and
enters the conversation as the text `(audio N ms)`; audio output is a quiet 24 kHz tone,
20 ms per character, with its transcription when `outputAudioTranscription` is set.
Usage follows Gemini's rules: 32 tokens per second of audio in and out, text by the
tokenizer, reported as usageMetadata with the turn's last message.
"""
from __future__ import annotations

import base64
import binascii
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
from gateway.simulator.realtime import AUDIO_BYTES_PER_CHAR, _tone

PATHS = ("/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
         "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent")
IN_BYTES_PER_SECOND, OUT_BYTES_PER_SECOND, TOKENS_PER_SECOND = 32_000, 48_000, 32
Message = dict[str, Any]


def _audio_tokens(n_bytes: int, per_second: int) -> int:
    return math.ceil(n_bytes * TOKENS_PER_SECOND / per_second)


@dataclass
class LiveSim:
    options: SimOptions = field(default_factory=SimOptions)
    setup: Message | None = None
    messages: list[c.Message] = field(default_factory=list)
    audio_in_bytes: int = 0              # all audio heard so far (billed with each turn)
    activity: bytearray | None = None    # an open manual activity's audio
    calls: int = 0

    def handle(self, message: Message) -> tuple[list[Message], bool]:
        """(immediate replies, whether a turn must be answered now)."""
        if self.setup is None:
            if "setup" not in message:
                raise ValueError("the first message must be setup")
            self.setup = message["setup"] or {}
            return [{"setupComplete": {}}], False
        if "clientContent" in message:
            content = message["clientContent"] or {}
            for turn in content.get("turns") or ():
                role = "assistant" if turn.get("role") == "model" else "user"
                text = " ".join(p.get("text", "") for p in turn.get("parts") or ()
                                if isinstance(p, dict))
                self.messages.append(c.Message(role, (c.TextPart(text or " "),)))
            return [], bool(content.get("turnComplete"))
        if "realtimeInput" in message:
            data = message["realtimeInput"] or {}
            if "activityStart" in data:
                self.activity = bytearray()
            elif "audio" in data and self.activity is not None:
                try:
                    self.activity += base64.b64decode(data["audio"].get("data", ""), validate=True)
                except (binascii.Error, ValueError, AttributeError):
                    raise ValueError("audio.data must be base64") from None
            elif "activityEnd" in data and self.activity is not None:
                n = len(self.activity)
                self.activity = None
                self.audio_in_bytes += n
                self.messages.append(c.Message("user", (c.TextPart(
                    f"(audio {n * 1000 // IN_BYTES_PER_SECOND} ms)"),)))
                return [], True
            return [], False
        if "toolResponse" in message:
            for r in (message["toolResponse"] or {}).get("functionResponses") or ():
                output = json.dumps((r.get("response") or {}).get("output"))
                self.messages.append(c.Message("tool", (c.ToolResultPart(
                    r.get("id", ""), (c.TextPart(output),)),)))
            return [], True
        raise ValueError(f"unknown message {sorted(message)}")

    def _request(self) -> c.Request:
        setup = self.setup or {}
        system = " ".join(p.get("text", "") for p in
                          (setup.get("systemInstruction") or {}).get("parts") or ())
        messages = ([c.Message("system", (c.TextPart(system),))] if system else []) + self.messages
        if not self.messages:
            messages.append(c.Message("user", (c.TextPart(" "),)))
        tools = tuple(c.Tool(d["name"], d.get("description"), d.get("parameters") or
                             {"type": "object", "properties": {}})
                      for t in setup.get("tools") or () for d in t.get("functionDeclarations") or ())
        limit = (setup.get("generationConfig") or {}).get("maxOutputTokens")
        return c.Request(model=str(setup.get("model", "models/sim")).split("/")[-1],
                         messages=tuple(messages), tools=tools,
                         max_tokens=limit if isinstance(limit, int) else None)

    def turn_messages(self) -> tuple[list[Message], float]:
        """The answer's messages (usage on the last) and the pause between chunks."""
        req = self._request()
        fault = parse_fault(req)
        p = plan(req)
        text_in = tokenizer.count_request(req)
        audio_in = _audio_tokens(self.audio_in_bytes, IN_BYTES_PER_SECOND)
        setup = self.setup or {}
        audio = "AUDIO" in ((setup.get("generationConfig") or {}).get("responseModalities")
                            or ["AUDIO"])
        out: list[Message] = []
        text_out = audio_out_bytes = 0
        if p.tool_calls:
            calls = []
            for call in p.tool_calls:
                self.calls += 1
                try:
                    args = json.loads(call.arguments or "{}")
                except ValueError:
                    args = {}
                calls.append({"id": f"fc_sim{self.calls:04d}", "name": call.name, "args": args})
                text_out += tokenizer.count_text(call.name + (call.arguments or ""))
            self.messages.append(c.Message("assistant", tuple(
                c.ToolCallPart(k["id"], k["name"], json.dumps(k["args"])) for k in calls)))
            out.append({"toolCall": {"functionCalls": calls}})
        else:
            text = strip_directives(p.text)
            self.messages.append(c.Message("assistant", (c.TextPart(text or " "),)))
            n = max(1, self.options.chunk_chars if fault.chunk_chars is None else fault.chunk_chars)
            for chunk in (text[i:i + n] for i in range(0, len(text), n)):
                text_out += tokenizer.count_text(chunk) if not audio else 0
                if audio:
                    pcm = _tone(len(chunk) * AUDIO_BYTES_PER_CHAR)
                    audio_out_bytes += len(pcm)
                    out.append({"serverContent": {"modelTurn": {"parts": [{"inlineData": {
                        "mimeType": "audio/pcm;rate=24000",
                        "data": base64.b64encode(pcm).decode()}}]}}})
                    if "outputAudioTranscription" in setup:
                        out.append({"serverContent": {"outputTranscription": {"text": chunk}}})
                else:
                    out.append({"serverContent": {"modelTurn": {"parts": [{"text": chunk}]}}})
            out.append({"serverContent": {"turnComplete": True}})
        audio_out = _audio_tokens(audio_out_bytes, OUT_BYTES_PER_SECOND)
        prompt, response = text_in + audio_in, text_out + audio_out
        out[-1]["usageMetadata"] = {
            "promptTokenCount": prompt, "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text_in},
                                    {"modality": "AUDIO", "tokenCount": audio_in}],
            "responseTokensDetails": [{"modality": "TEXT", "tokenCount": text_out},
                                      {"modality": "AUDIO", "tokenCount": audio_out}]}
        return out, chunk_delay(self.options, fault)


Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message | None]]


async def serve_live(sim: LiveSim, receive: Receive, send: Send) -> int:
    """Drive one session until the client goes; returns the close code to use."""
    while True:
        message = await receive()
        if message is None:
            return 1000
        try:
            replies, answer = sim.handle(message)
        except ValueError:
            return 1007
        for reply in replies:
            await send(reply)
        if answer:
            messages, pause = sim.turn_messages()
            for m in messages:
                await send(m)
                if pause and m is not messages[-1]:
                    await trio.sleep(pause)


async def live_asgi(scope: dict[str, Any], receive: Any, send: Any, options: SimOptions) -> None:
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    if not headers.get("x-goog-api-key") and b"key=" not in scope.get("query_string", b""):
        await send({"type": "websocket.close", "code": 4001})
        return
    await send({"type": "websocket.accept"})

    async def next_message() -> Message | None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return None
            try:
                value = json.loads(message.get("text") or message.get("bytes") or b"")
            except (ValueError, RecursionError):
                continue
            if isinstance(value, dict):
                return value

    async def send_message(message: Message) -> None:
        await send({"type": "websocket.send", "text": json.dumps(message, separators=(",", ":"))})

    code = await serve_live(LiveSim(options), next_message, send_message)
    try:
        await send({"type": "websocket.close", "code": code})
    except Exception:   # the client already left: nothing to close
        pass
