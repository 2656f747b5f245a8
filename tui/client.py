"""The dashboard's side of the control socket (asyncio, as Textual is).

One ControlClient is one connection: `connect()`, then `call(MessageType, **fields)`
for request/reply, while pushed Event and Dropped frames go to `on_push`. When the
connection ends every waiting call fails with ConnectionError and `wait_closed()`
returns; reconnecting is the app's job (a fresh client per attempt).
"""
from __future__ import annotations

import asyncio
import itertools
from typing import Any, Callable

from gateway import errors
from gateway.control import wire

CALL_TIMEOUT = 15.0


class ControlClient:
    def __init__(self, path: str, on_push: Callable[[wire.Message], None]) -> None:
        self.path = path
        self._on_push = on_push
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._closed = asyncio.Event()
        self.close_reason = ""

    async def connect(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(self.path)
        self._reader_task = asyncio.create_task(self._read(reader))

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._closed.is_set()

    async def call(self, kind: type[wire.Request], **fields: Any) -> Any:
        """Send one request and wait for its Result data; an Error reply raises
        PrismError with the gateway's code and message."""
        if not self.connected:
            raise ConnectionError("not connected to the gateway")
        msg = kind(id=next(self._ids), **fields)
        future = asyncio.get_running_loop().create_future()
        self._pending[msg.id] = future
        try:
            self._writer.write(wire.encode(msg))
            await self._writer.drain()
            reply = await asyncio.wait_for(future, CALL_TIMEOUT)
        except OSError as exc:
            raise ConnectionError(f"control socket write failed: {exc}") from None
        finally:
            self._pending.pop(msg.id, None)
        if isinstance(reply, wire.Error):
            raise errors.PrismError(reply.message, code=reply.code)
        return reply.data

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = wire.FrameDecoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self.close_reason = "the gateway closed the connection"
                    break
                for msg in decoder.feed(data):
                    self._dispatch(msg)
        except errors.WireError as exc:
            self.close_reason = f"protocol error from the gateway: {exc.message}"
        except OSError as exc:
            self.close_reason = f"connection lost: {exc.strerror or exc}"
        finally:
            self._finish()

    def _dispatch(self, msg: wire.Message) -> None:
        if isinstance(msg, (wire.Result, wire.Error)) and msg.id is not None:
            future = self._pending.get(msg.id)
            if future is not None and not future.done():
                future.set_result(msg)
            return
        if isinstance(msg, wire.Error):
            # About the connection as a whole: the gateway is about to close it.
            self.close_reason = f"{msg.code}: {msg.message}"
            return
        self._on_push(msg)

    def _finish(self) -> None:
        self._closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError(self.close_reason or "disconnected"))
        if self._writer is not None:
            self._writer.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            # wait() neither raises the reader's cancellation here nor hides our own.
            await asyncio.wait([self._reader_task])
        self._finish()
