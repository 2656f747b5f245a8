"""A TCP front for the HTTP simulator that misbehaves on demand, for failover tests.

The simulator's ``[[sim ...]]`` directives travel in the prompt, so every route of a
model would see the same fault. To fail only the first route, that route's provider
points here instead; the second points at the simulator itself. Modes, applied to each
new connection (changing the mode drops the connections already open):

    pass      forward both ways to the simulator, recording each request's JSON body
    status    answer every request with HTTP ``status`` and an OpenAI-style error body
    hang      read the request and never answer (the gateway's timeout must fire)
    reset     read the request, then reset the connection without a byte of response
"""
from __future__ import annotations

import json
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

import trio

import harness


def _requests_in(buf: bytearray) -> list[bytes]:
    """Pop every complete Content-Length request out of ``buf``; return their bodies."""
    bodies = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return bodies
        length = 0
        for line in bytes(buf[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(buf) < end + 4 + length:
            return bodies
        bodies.append(bytes(buf[end + 4:end + 4 + length]))
        del buf[:end + 4 + length]


class FaultProxy:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.mode = "pass"
        self.status = 500
        self.bodies: list[dict[str, Any]] = []   # upstream request bodies seen in pass mode
        self.connections = 0
        self._scopes: set[trio.CancelScope] = set()
        self._thread: harness.ServerThread | None = None
        self.url = ""

    # ------------------------------------------------------------ control (test thread)

    def start(self) -> "FaultProxy":
        self._thread = harness.ServerThread(self._serve).start()
        self.url = self._thread.url
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()

    def set(self, mode: str, status: int = 500) -> None:
        assert mode in ("pass", "status", "hang", "reset")
        self.mode, self.status = mode, status
        if self._thread is not None and self._thread._token is not None:
            trio.from_thread.run_sync(self._drop_all, trio_token=self._thread._token)

    # ------------------------------------------------------------ the server (its own loop)

    def _drop_all(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()

    async def _serve(self, stop: trio.Event, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._handle, listeners)
            task_status.started(f"http://127.0.0.1:{port}")
            await stop.wait()
            nursery.cancel_scope.cancel()

    async def _read_request(self, client: trio.SocketStream) -> None:
        buf = bytearray()
        while not _requests_in(buf):
            data = await client.receive_some(65536)
            if not data:
                return
            buf += data

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        mode, status = self.mode, self.status
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await self._misbehave(client, mode, status)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass   # the gateway hung up first: nothing to do
            finally:
                self._scopes.discard(scope)
                with trio.CancelScope(shield=True):
                    await client.aclose()

    async def _misbehave(self, client: trio.SocketStream, mode: str, status: int) -> None:
        if mode == "pass":
            await self._pipe(client)
            return
        await self._read_request(client)
        if mode == "status":
            body = json.dumps({"error": {"message": f"proxy says {status}",
                                         "type": "server_error"}}).encode()
            head = (f"HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
            await client.send_all(head.encode() + body)
        elif mode == "hang":
            await trio.sleep_forever()
        elif mode == "reset":
            # SO_LINGER 0: close() sends RST, the rudest end a peer can see.
            client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))

    async def _pipe(self, client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream(*self._target)
        buf = bytearray()

        async def up(cancel: trio.CancelScope) -> None:
            try:
                while data := await client.receive_some(65536):
                    buf.extend(data)
                    for body in _requests_in(buf):
                        try:
                            self.bodies.append(json.loads(body))
                        except ValueError:
                            pass
                    await upstream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            cancel.cancel()

        async def down(cancel: trio.CancelScope) -> None:
            try:
                while data := await upstream.receive_some(65536):
                    await client.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            cancel.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(up, nursery.cancel_scope)
                nursery.start_soon(down, nursery.cancel_scope)
        finally:
            with trio.CancelScope(shield=True):
                await upstream.aclose()
