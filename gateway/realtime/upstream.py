"""The upstream side of a realtime session: one event connection per session.

- OpenAI-kind providers: a WebSocket to `<base_url>/realtime?model=<upstream model>` with
  the provider's key (trio-websocket; its bounded message queue is the back-pressure).
- The in-process simulator: the simulator's realtime state machine on memory channels.
- Gemini-kind providers: the Gemini Live API (BidiGenerateContent) on a WebSocket, with
  the OpenAI events translated both ways (gateway.realtime.gemini_live).

Every way the session sees `send(event)` and `receive() -> event | None` (None: the
upstream ended).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from typing import Any, AsyncIterator, Awaitable, Callable

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from gateway import errors
from gateway.config import ProviderConfig
from gateway.realtime.gemini_live import LiveBridge

Event = dict[str, Any]


class Upstream:
    def __init__(self, send: Callable[[Event], Awaitable[None]],
                 receive: Callable[[], Awaitable[Event | None]]) -> None:
        self.send = send
        self.receive = receive


def ws_url(base_url: str, model: str) -> str:
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[8:]
    elif base.startswith("http://"):
        base = "ws://" + base[7:]
    return f"{base}/realtime?model={model}"


def _decode(text: str | bytes) -> Event | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@contextlib.asynccontextmanager
async def _openai(provider: ProviderConfig, model: str, max_bytes: int) -> AsyncIterator[Upstream]:
    key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    headers = [("Authorization", f"Bearer {key}"), ("OpenAI-Beta", "realtime=v1")]
    connected = False
    try:
        # trio-websocket's own timeouts: a fail_after here would wrap the nursery the
        # connection opens, and that nursery must outlive any scope entered before it.
        async with open_websocket_url(ws_url(provider.base_url, model), extra_headers=headers,
                                      message_queue_size=8, max_message_size=max_bytes * 2,
                                      connect_timeout=provider.connect_timeout,
                                      disconnect_timeout=2) as ws:
            connected = True

            async def send(event: Event) -> None:
                try:
                    await ws.send_message(json.dumps(event, separators=(",", ":")))
                except ConnectionClosed:
                    pass            # the reader sees the end and reports it

            async def receive() -> Event | None:
                while True:
                    try:
                        message = await ws.get_message()
                    except ConnectionClosed:
                        return None
                    event = _decode(message)
                    if event is not None:
                        return event
            yield Upstream(send, receive)
    except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError) as exc:
        if connected:
            raise
        raise errors.UpstreamError(f"Realtime upstream {provider.id!r} refused the connection "
                                   f"({type(exc).__name__})") from None


@contextlib.asynccontextmanager
async def _simulator(provider: ProviderConfig, model: str) -> AsyncIterator[Upstream]:
    from gateway.simulator.core import SimOptions
    from gateway.simulator.realtime import RealtimeSim, serve_realtime

    to_sim, sim_in = trio.open_memory_channel[Event | None](8)
    sim_out, from_sim = trio.open_memory_channel[Event](8)
    sim = RealtimeSim(model, SimOptions(chunk_chars=provider.chunk_chars,
                                        chunk_delay=provider.chunk_delay))

    async def sim_receive() -> Event | None:
        try:
            return await sim_in.receive()
        except trio.EndOfChannel:
            return None

    async def receive() -> Event | None:
        try:
            return await from_sim.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return None

    async with trio.open_nursery() as nursery:
        async def run() -> None:
            async with sim_out:
                await serve_realtime(sim, sim_receive, sim_out.send)
        nursery.start_soon(run)
        try:
            yield Upstream(to_sim.send, receive)
        finally:
            nursery.cancel_scope.cancel()


LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def live_url(base_url: str) -> str:
    """The Gemini Live WebSocket of a Gemini-kind provider's base URL (an API version
    at its end is dropped: the Live path names its own)."""
    base = re.sub(r"/v1(alpha|beta)?\d*$", "", base_url.rstrip("/"))
    return ws_url(base, "x").rsplit("/realtime?", 1)[0] + LIVE_PATH


@contextlib.asynccontextmanager
async def _gemini(provider: ProviderConfig, model: str, max_bytes: int) -> AsyncIterator[Upstream]:
    """The Gemini Live bridge (gateway.realtime.gemini_live) on one WebSocket. A reader
    task translates Gemini's messages into the bounded channel the session reads, and
    the events the bridge answers by itself go through the same channel, in order."""
    key = os.environ.get(provider.api_key_env, "") if provider.api_key_env else ""
    bridge = LiveBridge(model)
    to_session, from_bridge = trio.open_memory_channel[Event](16)
    setup_done = trio.Event()
    connected = False
    try:
        async with open_websocket_url(live_url(provider.base_url),
                                      extra_headers=[("x-goog-api-key", key)],
                                      message_queue_size=8, max_message_size=max_bytes * 2,
                                      connect_timeout=provider.connect_timeout,
                                      disconnect_timeout=2) as ws, trio.open_nursery() as nursery:
            connected = True

            async def read() -> None:
                async with to_session:
                    for event in bridge.opened():
                        await to_session.send(event)
                    while True:
                        try:
                            message = _decode(await ws.get_message())
                        except ConnectionClosed:
                            return
                        if message is None:
                            continue
                        if "setupComplete" in message:
                            setup_done.set()
                        for event in bridge.upstream(message):
                            await to_session.send(event)
            nursery.start_soon(read)

            async def send(event: Event) -> None:
                to_gemini, to_client = bridge.client(event)
                for reply in to_client:
                    try:
                        await to_session.send(reply)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                for message in to_gemini:
                    try:
                        await ws.send_message(json.dumps(message, separators=(",", ":")))
                    except ConnectionClosed:
                        return
                    if "setup" in message:   # Live wants nothing else before setupComplete
                        with trio.move_on_after(provider.connect_timeout + provider.read_timeout):
                            await setup_done.wait()

            async def receive() -> Event | None:
                try:
                    return await from_bridge.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return None
            try:
                yield Upstream(send, receive)
            finally:
                nursery.cancel_scope.cancel()
    except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError) as exc:
        if connected:
            raise
        raise errors.UpstreamError(f"Realtime upstream {provider.id!r} refused the connection "
                                   f"({type(exc).__name__})") from None


def connect(provider: ProviderConfig, model: str, max_bytes: int):
    """An async context manager for the session's upstream connection."""
    if provider.kind == "openai":
        return _openai(provider, model, max_bytes)
    if provider.kind == "simulator":
        return _simulator(provider, model)
    if provider.kind == "gemini":
        return _gemini(provider, model, max_bytes)
    raise errors.InvalidRequest(f"Realtime is not available through a {provider.kind!r} "
                                "upstream; use a model routed to an OpenAI- or Gemini-kind "
                                "provider")
