"""The upstream side of a realtime session: one event connection per session.

- OpenAI-kind providers: a WebSocket to `<base_url>/realtime?model=<upstream model>` with
  the provider's key (trio-websocket; its bounded message queue is the back-pressure).
- The in-process simulator: the simulator's realtime state machine on memory channels.

Either way the session sees `send(event)` and `receive() -> event | None` (None: the
upstream ended). Gemini-kind routes are refused before connecting (see the README for
what a Gemini Live bridge would and would not carry).
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, AsyncIterator, Awaitable, Callable

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from gateway import errors
from gateway.config import ProviderConfig

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


def connect(provider: ProviderConfig, model: str, max_bytes: int):
    """An async context manager for the session's upstream connection."""
    if provider.kind == "openai":
        return _openai(provider, model, max_bytes)
    if provider.kind == "simulator":
        return _simulator(provider, model)
    raise errors.InvalidRequest(f"Realtime is not available through a {provider.kind!r} "
                                "upstream; use a model routed to an OpenAI-kind provider")
