"""One realtime session: the client's WebSocket bridged to the upstream's, with money per
response and the session limits.

Money: each `response.create` is admitted by the engine before it is forwarded
(gateway.realtime.money: the plan, RPM and TPM limits, plan windows and a hold for the
input so far plus the response's output cap, `max_output_tokens` of the response or the
session); a refusal becomes an `error` event and the session stays open. The
upstream's `response.done` usage settles that hold (text, audio and cached tokens,
each at its price). When the client leaves with a response in flight, the upstream is
asked to cancel it and its `response.done` (which reports what was generated) is
awaited briefly; failing that the hold is settled for what was relayed, marked
estimated. Every hold ends exactly once.

Back-pressure: events are relayed one at a time, each send awaited, through bounded
queues on both connections, so a slow client slows the upstream instead of growing a
buffer here.

Limits: `max_session_seconds` (close 4002), `idle_timeout` with no client message and
no response in flight (close 4001), `max_message_bytes` per client message (close
1009); an upstream that ends closes the client with 1011.
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import trio

from gateway import errors, tokenizer
from gateway.config_protocols import RealtimeConfig
from gateway.realtime import meter
from gateway.realtime.money import NothingBilled, ResponseRequest, SessionMoney
from gateway.realtime.upstream import Upstream

log = logging.getLogger("prism.realtime")

CLOSE_IDLE, CLOSE_EXPIRED, CLOSE_TOO_BIG, CLOSE_UPSTREAM = 4001, 4002, 1009, 1011
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.text.delta",
                          "response.output_audio_transcript.delta",
                          "response.audio_transcript.delta",
                          "response.function_call_arguments.delta"})
_AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})


@dataclass
class Held:
    """One admitted response."""
    prep: Any                   # the engine's Prepared: closed through the session's money
    input_tokens: int
    event_id: str = ""          # the response.create's, which an upstream error names
    response_id: str | None = None
    text: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    started: float = field(default_factory=time.monotonic)


class RealtimeSession:
    def __init__(self, *, price: meter.RealtimePrice, money: SessionMoney,
                 limits: RealtimeConfig, upstream: Upstream,
                 receive: Callable[[], Awaitable[str | bytes | None]],
                 send: Callable[[str], Awaitable[None]],
                 close: Callable[[int, str], Awaitable[None]]) -> None:
        self.price, self.money, self.limits = price, money, limits
        self.up = upstream
        self._receive, self._send, self._close = receive, send, close
        self.max_output = limits.default_max_output_tokens
        self.input_tokens = 0          # the conversation so far, as we can count it
        self.audio_bytes = 0
        self.held: deque[Held] = deque()
        self.last_client = time.monotonic()
        self.client_open = True
        self.closed_with: tuple[int, str] | None = None

    # ------------------------------------------------------------ to the client

    async def _to_client(self, event: dict[str, Any]) -> None:
        if self.client_open:
            await self._send(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    async def _error(self, message: str, *, type_: str, code: str,
                     event_id: str | None = None) -> None:
        await self._to_client({"type": "error", "event_id": "event_" + secrets.token_hex(8),
                               "error": {"type": type_, "code": code, "message": message,
                                         "event_id": event_id}})

    async def _end(self, code: int, reason: str) -> None:
        if self.client_open:
            self.client_open = False
            self.closed_with = (code, reason)
            await self._close(code, reason)

    # ------------------------------------------------------------ the bridge

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                async def upstream_then_stop() -> None:
                    await self._upstream_pump()
                    nursery.cancel_scope.cancel()

                async def watchdog_then_stop() -> None:
                    await self._watchdog()
                    nursery.cancel_scope.cancel()
                nursery.start_soon(upstream_then_stop)
                nursery.start_soon(watchdog_then_stop)
                await self._client_pump()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._drain()

    async def _watchdog(self) -> None:
        deadline = time.monotonic() + self.limits.max_session_seconds
        while True:
            now = time.monotonic()
            if now >= deadline:
                await self._end(CLOSE_EXPIRED, f"session exceeded {self.limits.max_session_seconds:g}s")
                return
            idle_at = self.last_client + self.limits.idle_timeout
            if not self.held and now >= idle_at:
                await self._end(CLOSE_IDLE, f"no client event for {self.limits.idle_timeout:g}s")
                return
            next_check = min(deadline, idle_at if idle_at > now else now + 1.0, now + 1.0)
            await trio.sleep(max(0.05, next_check - now))

    async def _client_pump(self) -> None:
        while True:
            message = await self._receive()
            if message is None:
                self.client_open = False
                return
            self.last_client = time.monotonic()
            size = len(message.encode() if isinstance(message, str) else message)
            if size > self.limits.max_message_bytes:
                await self._end(CLOSE_TOO_BIG, f"message of {size} bytes exceeds "
                                               f"{self.limits.max_message_bytes}")
                return
            try:
                event = json.loads(message)
            except (ValueError, RecursionError):
                event = None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                await self._error("Each message must be a JSON object with a 'type'",
                                  type_="invalid_request_error", code="invalid_event")
                continue
            if await self._admit_or_refuse(event):
                await self.up.send(event)

    async def _admit_or_refuse(self, event: dict[str, Any]) -> bool:
        """Track what the input holds; admit a response.create. False: do not forward."""
        kind = event["type"]
        if kind == "session.update":
            s = event.get("session") if isinstance(event.get("session"), dict) else {}
            value = s.get("max_output_tokens", s.get("max_response_output_tokens"))
            if value is not None:
                self.max_output = meter.max_output(value, self.limits.default_max_output_tokens)
        elif kind == "input_audio_buffer.append":
            n = meter.b64_len(event.get("audio"))
            self.audio_bytes += n
            self.input_tokens += 0 if not n else meter.audio_tokens(n)
        elif kind == "conversation.item.create":
            item = event.get("item") if isinstance(event.get("item"), dict) else {}
            content = item.get("content") if isinstance(item.get("content"), list) else ()
            text = " ".join(str(p.get("text", "")) for p in content
                            if isinstance(p, dict)) + str(item.get("output", "") or "")
            self.input_tokens += tokenizer.count_text(text) + 4
        elif kind == "response.create":
            return await self._admit(event)
        return True

    async def _admit(self, event: dict[str, Any]) -> bool:
        response = event.get("response") if isinstance(event.get("response"), dict) else {}
        cap = meter.max_output(response.get("max_output_tokens",
                                            response.get("max_response_output_tokens")),
                               self.max_output)
        amount = meter.worst_case_micros(self.price, self.input_tokens, cap)
        event.setdefault("event_id", "event_" + secrets.token_hex(8))
        try:
            prep = await self.money.hold(ResponseRequest(amount, self.input_tokens, cap))
        except errors.ClientError as err:
            await self._error(err.message, type_=err.type_name, code=err.code or err.type_name,
                              event_id=event["event_id"])
            return False
        self.held.append(Held(prep, self.input_tokens, event["event_id"]))
        return True

    def _held_for(self, response_id: Any) -> Held | None:
        for h in self.held:
            if h.response_id == response_id:
                return h
        return None

    async def _upstream_pump(self) -> None:
        while True:
            event = await self.up.receive()
            if event is None:
                await self._end(CLOSE_UPSTREAM, "the upstream ended the session")
                return
            await self._account(event)
            await self._to_client(event)
            self._relayed(event)

    async def _account(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.created":
            rid = (event.get("response") or {}).get("id")
            for h in self.held:
                if h.response_id is None:
                    h.response_id = rid
                    break
        elif kind == "response.done":
            response = event.get("response") or {}
            h = self._held_for(response.get("id"))
            if h is not None:
                self.held.remove(h)
                await self._settle(h, meter.tokens_of_usage(response.get("usage")))
        elif kind == "error":
            # An upstream refusal of a response.create we admitted: nothing was generated.
            ref = (event.get("error") or {}).get("event_id")
            for h in list(self.held):
                if h.response_id is None and ref and ref == h.event_id:
                    self.held.remove(h)
                    await self._settle(h, None, void=True)

    def _relayed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in _TEXT_DELTAS or kind in _AUDIO_DELTAS:
            h = self._held_for(event.get("response_id"))
            if h is not None and self.client_open:
                if kind in _AUDIO_DELTAS:
                    h.audio_bytes += meter.b64_len(event.get("delta"))
                else:
                    h.text.append(str(event.get("delta", "")))

    # ------------------------------------------------------------ the end

    async def _drain(self) -> None:
        """After the bridge: responses still in flight get the upstream's own count if it
        comes within a few seconds of a cancel, else what was relayed."""
        if self.held:
            with trio.move_on_after(3):
                await self.up.send({"type": "response.cancel"})
                while self.held and any(h.response_id for h in self.held):
                    event = await self.up.receive()
                    if event is None:
                        break
                    await self._account(event)
        while self.held:
            h = self.held.popleft()
            relayed = bool(h.text or h.audio_bytes)
            await self._settle(h, None, void=not relayed)
        await self._end(1000, "session ended")

    async def _settle(self, h: Held, tokens: meter.Tokens | None, *, void: bool = False) -> None:
        estimated = tokens is None
        if tokens is None:
            tokens = meter.Tokens(text_in=h.input_tokens,
                                  text_out=tokenizer.count_text("".join(h.text)),
                                  audio_out=meter.audio_tokens(h.audio_bytes))
        cost = None if void else meter.cost_micros(self.price, tokens)
        error = None if cost else NothingBilled("the response ended with nothing to bill")
        await self.money.close(h.prep, None if void else tokens, cost,
                               estimated=estimated and not void, error=error)
