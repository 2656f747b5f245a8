"""The network backend under the upstream pool's httpcore connections.

httpcore's trio stream wraps every read and every write in two context managers (its
exception map and trio.fail_after, itself a generator-based manager around a cancel
scope), and an HTTP/1.1 request is two writes: the head, then the body. Under load
those managers and the extra send showed up at ~9% of the gateway's CPU (py-spy,
issue 18). This stream keeps httpcore's contract (the same httpcore exceptions for the
same trio failures, the same per-operation timeouts) with one bare cancel scope per
operation, and holds written bytes until the next read, so the head and body of a
request leave in one send. A request is always followed by a read of its response, so
nothing waits in the buffer; a send that fails is treated as httpcore treats a failed
request write (ignored, the read reports the broken connection).
"""
from __future__ import annotations

import os
import ssl
import typing

import httpcore
import trio
from httpcore._backends.trio import TrioStream

_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)


class LeanStream(TrioStream):
    def __init__(self, stream: trio.abc.Stream) -> None:
        super().__init__(stream)
        self._pending: list[bytes] = []
        self._write_timeout: float | None = None
        # Plain TCP only: under TLS the bytes must go through the SSL object.
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._pending.append(buffer)
            self._write_timeout = timeout

    async def _flush(self) -> None:
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        fd = self._fd
        if fd is not None:
            # A request fits the socket's send buffer nearly always: one non-blocking
            # write, and no cancel scope for a timeout that cannot apply. What does not
            # fit (or a socket in trouble) takes the timed path below.
            try:
                sent = os.write(fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return   # as a failed send below: the read reports the broken connection
            if sent == len(data):
                return
            data = data[sent:]
        timeout = self._write_timeout
        try:
            if timeout is None:
                await self._stream.send_all(data)
                return
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                await self._stream.send_all(data)
                return
        except _BROKEN:
            # httpcore itself swallows a WriteError while sending a request and reads
            # on (a server may answer and hang up early); the read then tells what
            # happened, e.g. "Server disconnected without sending a response", which
            # is what marks a stale pooled connection as safe to retry.
            return
        raise httpcore.WriteTimeout("timed out sending the request")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            await self._flush()
        try:
            if timeout is None:
                return await self._stream.receive_some(max_bytes)
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                return await self._stream.receive_some(max_bytes)
        except _BROKEN as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
        raise httpcore.ReadTimeout("timed out reading the response")

    async def aclose(self) -> None:
        self._pending.clear()
        self._fd = None
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        tls = await super().start_tls(ssl_context, server_hostname, timeout)
        return LeanStream(tls._stream)


class LeanBackend(httpcore.TrioBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        return LeanStream(stream._stream)
