"""OpenAI Realtime events <-> the Gemini Live API (BidiGenerateContent), for a realtime
model routed to a Gemini-kind upstream. Pure: a state machine with no I/O, driven by
gateway.realtime.upstream.

The client keeps speaking OpenAI's protocol; the bridge keeps the conversation turns
it has not sent yet and sends them when the client asks for a response:

    session.update            -> remembered; the Live `setup` (model, instructions, tools,
                                 output modality, max output tokens) goes out with the
                                 first response.create, and cannot change afterwards
    conversation.item.create  -> a pending user/model turn, or a pending function response
    input_audio_buffer.*      -> buffered here; a committed buffer is resampled from
                                 pcm16 24 kHz to 16 kHz and sent as one manual activity
                                 (activityStart, audio, activityEnd) at response.create
    response.create           -> toolResponse, the audio activity, or clientContent with
                                 turnComplete; response.created at once
    serverContent text / audio / outputTranscription
                              -> response.output_text / output_audio / transcript deltas
    toolCall                  -> function_call output items, then response.done
    turnComplete (+usageMetadata) -> response.done with usage in OpenAI's shape

Events with no Gemini Live equivalent are answered with an `error` event
(code `unsupported_gemini_feature`) and change nothing; the README lists them.
"""
from __future__ import annotations

import base64
import binascii
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from gateway.realtime.live_wire import obj as _obj
from gateway.realtime.live_wire import resample_24k_to_16k, usage_of

Event = dict[str, Any]
UNSUPPORTED = "unsupported_gemini_feature"
MAX_AUDIO_BYTES = 8 * 1024 * 1024         # ~3 min of 24 kHz audio per response
MAX_PENDING_CHARS = 4 * 1024 * 1024       # text of the turns waiting for a response
_KNOWN_CALLS = 1000                       # function call ids kept to name their outputs
_AUDIO_CHUNK = 32_000                      # bytes of 16 kHz audio per realtimeInput
_NO_EQUIVALENT = frozenset({"conversation.item.delete", "conversation.item.truncate",
                            "conversation.item.retrieve", "output_audio_buffer.clear"})


def _audio(session: Event) -> bool:
    """Whether the session answers in audio (OpenAI's default) rather than text."""
    modalities = session.get("output_modalities")
    return "audio" in modalities if isinstance(modalities, list) and modalities else True


@dataclass
class _Response:
    id: str
    audio: bool
    cancelled: bool = False
    item_id: str | None = None          # the assistant message item, once started
    text: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    output: list[Event] = field(default_factory=list)
    usage: Event | None = None
    index: int = 0                      # the next output_index


@dataclass
class LiveBridge:
    model: str                          # the upstream model id
    session: Event = field(default_factory=dict)
    setup_sent: bool = False
    turns: list[Event] = field(default_factory=list)           # pending Gemini contents
    tool_responses: list[Event] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)        # uncommitted, 24 kHz
    committed: bytearray = field(default_factory=bytearray)    # committed, 24 kHz
    calls: dict[str, str] = field(default_factory=dict)        # call id -> function name
    pending_chars: int = 0
    response: _Response | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.session = {"id": self.id("sess"), "object": "realtime.session", "type": "realtime",
                        "model": self.model, "output_modalities": ["audio"], "instructions": "",
                        "tools": [], "max_output_tokens": "inf",
                        "audio": {"input": {"turn_detection": None}}}

    def id(self, prefix: str) -> str:
        return f"{prefix}_gl{next(self._ids):06d}"

    def ev(self, type_: str, **fields: Any) -> Event:
        return {"type": type_, "event_id": self.id("event"), **fields}

    def error(self, message: str, code: str = UNSUPPORTED, event_id: Any = None) -> Event:
        return self.ev("error", error={"type": "invalid_request_error", "code": code,
                                       "message": message, "event_id": event_id})

    def opened(self) -> list[Event]:
        return [self.ev("session.created", session=self.session)]

    # ------------------------------------------------------------ client -> Gemini

    def client(self, event: Event) -> tuple[list[Event], list[Event]]:
        """(messages for Gemini, events for the client) for one client event."""
        kind = event.get("type")
        eid = event.get("event_id")
        if kind == "session.update":
            return [], [self._session_update(event.get("session"), eid)]
        if kind == "input_audio_buffer.append":
            try:
                chunk = base64.b64decode(event.get("audio") or "", validate=True)
            except (binascii.Error, ValueError):
                return [], [self.error("audio must be base64-encoded pcm16", "invalid_audio", eid)]
            if len(self.audio) + len(self.committed) + len(chunk) > MAX_AUDIO_BYTES:
                return [], [self.error(f"the input audio buffer holds at most {MAX_AUDIO_BYTES} "
                                       "bytes before a response", "input_audio_buffer_full", eid)]
            self.audio += chunk
            return [], []
        if kind == "input_audio_buffer.clear":
            self.audio.clear()
            return [], [self.ev("input_audio_buffer.cleared")]
        if kind == "input_audio_buffer.commit":
            if not self.audio:
                return [], [self.error("the input audio buffer is empty",
                                       "input_audio_buffer_commit_empty", eid)]
            self.committed += self.audio
            self.audio.clear()
            item = {"id": self.id("item"), "object": "realtime.item", "type": "message",
                    "role": "user", "status": "completed",
                    "content": [{"type": "input_audio", "transcript": None}]}
            return [], [self.ev("input_audio_buffer.committed", item_id=item["id"],
                                previous_item_id=None), *self._added(item)]
        if kind == "conversation.item.create":
            return [], self._item(event.get("item"), eid)
        if kind == "response.create":
            return self._respond(event.get("response"), eid)
        if kind == "response.cancel":
            # Gemini Live has no cancel: the turn runs on upstream (and is billed from its
            # usage); the client is told it was cancelled when it ends.
            if self.response is not None:
                self.response.cancelled = True
            return [], []
        if kind in _NO_EQUIVALENT:
            return [], [self.error(f"{kind} has no Gemini Live equivalent on this route",
                                   event_id=eid)]
        return [], [self.error(f"unknown event type {kind!r}", "invalid_event", eid)]

    def _session_update(self, update: Any, eid: Any) -> Event:
        if not isinstance(update, dict):
            return self.error("session must be an object", "invalid_event", eid)
        fixed = ("instructions", "tools", "output_modalities", "modalities", "max_output_tokens",
                 "max_response_output_tokens")
        if self.setup_sent and any(k in update and update[k] != self.session.get(k) for k in fixed):
            return self.error("A Gemini Live session's instructions, tools, modalities and "
                              "output cap are fixed once its first response started",
                              event_id=eid)
        detection = (_obj(_obj(update.get("audio")).get("input")).get("turn_detection")
                     or update.get("turn_detection"))
        if detection:
            return self.error("Server-side turn detection is not bridged to Gemini Live: "
                              "commit the audio buffer and send response.create", event_id=eid)
        audio = _obj(update.get("audio"))
        formats = [_obj(_obj(audio.get(side)).get("format")).get("type") for side in
                   ("input", "output")] + [update.get("input_audio_format"),
                                           update.get("output_audio_format")]
        if any(f not in (None, "audio/pcm", "pcm16") for f in formats):
            return self.error("Only pcm16 audio is bridged to Gemini Live", event_id=eid)
        self.session.update({k: v for k, v in update.items() if k not in ("type", "audio")})
        if "modalities" in update:
            self.session["output_modalities"] = update["modalities"]
        return self.ev("session.updated", session=self.session)

    def _added(self, item: Event) -> list[Event]:
        return [self.ev("conversation.item.added", previous_item_id=None, item=item),
                self.ev("conversation.item.done", previous_item_id=None, item=item)]

    def _item(self, item: Any, eid: Any) -> list[Event]:
        if not isinstance(item, dict):
            return [self.error("item must be an object", "invalid_event", eid)]
        item = {"id": self.id("item"), "object": "realtime.item", **item}
        kind = item.get("type", "message")
        if kind == "function_call_output":
            call_id = str(item.get("call_id") or "")
            try:
                output = json.loads(item.get("output") or "null")
            except (TypeError, ValueError, RecursionError):
                output = item.get("output")
            self.tool_responses.append({"id": call_id, "name": self.calls.get(call_id, ""),
                                        "response": {"output": output}})
            return self._added(item)
        if kind != "message" or item.get("role") not in ("user", "assistant"):
            return [self.error(f"A {item.get('role') or kind} item has no Gemini Live "
                               "equivalent (instructions belong in session.update)", event_id=eid)]
        texts = []
        content = item.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "text"):
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, dict):
                return [self.error(f"Content of type {part.get('type')!r} is not bridged to "
                                   "Gemini Live; use text, or the input audio buffer",
                                   event_id=eid)]
        size = sum(len(t) for t in texts)
        if self.pending_chars + size > MAX_PENDING_CHARS:
            return [self.error(f"At most {MAX_PENDING_CHARS} characters of conversation wait "
                               "for a response; send response.create", "conversation_too_large",
                               eid)]
        self.pending_chars += size
        role = "model" if item["role"] == "assistant" else "user"
        self.turns.append({"role": role, "parts": [{"text": t} for t in texts if t] or
                           [{"text": " "}]})
        return self._added(item)

    def _setup(self) -> Event:
        s = self.session
        audio = _audio(s)
        config: Event = {"responseModalities": ["AUDIO" if audio else "TEXT"]}
        cap = s.get("max_output_tokens", s.get("max_response_output_tokens"))
        if isinstance(cap, int) and not isinstance(cap, bool):
            config["maxOutputTokens"] = cap
        setup: Event = {"model": f"models/{self.model}", "generationConfig": config,
                        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}
        if s.get("instructions"):
            setup["systemInstruction"] = {"parts": [{"text": str(s["instructions"])}]}
        declared = s.get("tools")
        tools = [{"name": str(t["name"]), "description": str(t.get("description") or ""),
                  "parameters": _obj(t.get("parameters")) or {"type": "object", "properties": {}}}
                 for t in (declared if isinstance(declared, list) else ())
                 if isinstance(t, dict) and t.get("name")]
        if tools:
            setup["tools"] = [{"functionDeclarations": tools}]
        if audio:
            setup["outputAudioTranscription"] = {}
        return {"setup": setup}

    def _respond(self, response: Any, eid: Any) -> tuple[list[Event], list[Event]]:
        if self.response is not None:
            return [], [self.error("A response is already in progress",
                                   "conversation_already_has_active_response", eid)]
        overrides = response if isinstance(response, dict) else {}
        if any(k in overrides for k in ("instructions", "tools", "conversation", "input")):
            return [], [self.error("Per-response instructions, tools, out-of-band "
                                   "conversations and input are not bridged to Gemini Live",
                                   event_id=eid)]
        out: list[Event] = []
        if not self.setup_sent:
            out.append(self._setup())
            self.setup_sent = True
        if self.tool_responses:
            out.append({"toolResponse": {"functionResponses": self.tool_responses}})
            self.tool_responses = []
        if self.committed:
            if self.turns:
                out.append({"clientContent": {"turns": self.turns, "turnComplete": False}})
            pcm = resample_24k_to_16k(bytes(self.committed))
            out.append({"realtimeInput": {"activityStart": {}}})
            for i in range(0, len(pcm), _AUDIO_CHUNK):
                out.append({"realtimeInput": {"audio": {
                    "mimeType": "audio/pcm;rate=16000",
                    "data": base64.b64encode(pcm[i:i + _AUDIO_CHUNK]).decode()}}})
            out.append({"realtimeInput": {"activityEnd": {}}})
        elif self.turns or not any("toolResponse" in m for m in out):
            out.append({"clientContent": {"turns": self.turns, "turnComplete": True}})
        self.turns, self.committed, self.pending_chars = [], bytearray(), 0
        self.response = _Response(self.id("resp"), _audio(self.session))
        return out, [self.ev("response.created", response={
            "id": self.response.id, "object": "realtime.response", "status": "in_progress",
            "output": []})]

    # ------------------------------------------------------------ Gemini -> client

    def upstream(self, message: Event) -> list[Event]:
        r = self.response
        if r is not None and "usageMetadata" in message:
            r.usage = usage_of(message["usageMetadata"]) or r.usage
        if "goAway" in message:
            return [self.ev("error", error={"type": "server_error", "code": "upstream_going_away",
                                            "message": "The Gemini Live session is ending"})]
        if r is None:
            return []
        out: list[Event] = []
        calls = _obj(message.get("toolCall")).get("functionCalls")
        if isinstance(calls, list):
            out += self._calls(r, calls)
            return out + self._done(r)
        content = message.get("serverContent")
        if not isinstance(content, dict):
            return out
        parts = _obj(content.get("modelTurn")).get("parts")
        for part in parts if isinstance(parts, list) else ():
            part = _obj(part)
            if isinstance(part.get("text"), str) and part["text"]:
                out += self._start(r)
                r.text.append(part["text"])
                out.append(self.ev("response.output_text.delta", **self._at(r),
                                   delta=part["text"]))
            data = _obj(part.get("inlineData")).get("data")
            if isinstance(data, str) and data:
                out += self._start(r)
                out.append(self.ev("response.output_audio.delta", **self._at(r), delta=data))
        said = _obj(content.get("outputTranscription")).get("text")
        if isinstance(said, str) and said:
            out += self._start(r)
            r.transcript.append(said)
            out.append(self.ev("response.output_audio_transcript.delta", **self._at(r),
                               delta=said))
        if content.get("turnComplete") or content.get("interrupted"):
            r.cancelled = r.cancelled or bool(content.get("interrupted"))
            out += self._done(r)
        return out

    def _at(self, r: _Response) -> Event:
        return {"response_id": r.id, "item_id": r.item_id, "output_index": r.index,
                "content_index": 0}

    def _start(self, r: _Response) -> list[Event]:
        if r.item_id is not None:
            return []
        r.item_id = self.id("item")
        part = {"type": "output_audio", "transcript": ""} if r.audio else \
            {"type": "output_text", "text": ""}
        return [self.ev("response.output_item.added", response_id=r.id, output_index=r.index,
                        item={"id": r.item_id, "object": "realtime.item", "type": "message",
                              "role": "assistant", "status": "in_progress", "content": []}),
                self.ev("response.content_part.added", **self._at(r), part=part)]

    def _calls(self, r: _Response, calls: list[Any]) -> list[Event]:
        out: list[Event] = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            call_id = str(call.get("id") or self.id("call"))
            name = str(call.get("name") or "")
            self.calls[call_id] = name
            if len(self.calls) > _KNOWN_CALLS:       # answered long ago: forget the oldest
                del self.calls[next(iter(self.calls))]
            args = json.dumps(_obj(call.get("args")), separators=(",", ":"))
            item = {"id": self.id("item"), "object": "realtime.item", "type": "function_call",
                    "status": "completed", "call_id": call_id, "name": name, "arguments": args}
            at = {"response_id": r.id, "output_index": r.index}
            out += [self.ev("response.output_item.added", **at, item={**item, "arguments": ""}),
                    self.ev("response.function_call_arguments.delta", **at, item_id=item["id"],
                            call_id=call_id, delta=args),
                    self.ev("response.function_call_arguments.done", **at, item_id=item["id"],
                            call_id=call_id, name=name, arguments=args),
                    self.ev("response.output_item.done", **at, item=item)]
            r.output.append(item)
            r.index += 1
        return out

    def _done(self, r: _Response) -> list[Event]:
        out: list[Event] = []
        if r.item_id is not None:
            at = self._at(r)
            if r.audio:
                transcript = "".join(r.transcript)
                part = {"type": "output_audio", "transcript": transcript}
                out += [self.ev("response.output_audio.done", **at),
                        self.ev("response.output_audio_transcript.done", **at,
                                transcript=transcript)]
            else:
                part = {"type": "output_text", "text": "".join(r.text)}
                out.append(self.ev("response.output_text.done", **at, text=part["text"]))
            item = {"id": r.item_id, "object": "realtime.item", "type": "message",
                    "role": "assistant", "status": "completed", "content": [part]}
            out += [self.ev("response.content_part.done", **at, part=part),
                    self.ev("response.output_item.done", response_id=r.id,
                            output_index=r.index, item=item)]
            r.output.append(item)
        done: Event = {"id": r.id, "object": "realtime.response",
                       "status": "cancelled" if r.cancelled else "completed", "output": r.output}
        if r.usage is not None:
            done["usage"] = r.usage
        self.response = None
        return out + [self.ev("response.done", response=done)]
