"""One HTTP/1.1 connection to an upstream: the upstream pool's connection object.

httpcore's HTTP/1.1 connection drives h11, which builds an event object per head, body
part and end of message, validates every header on the way out and in, and runs a
state machine per event; with httpcore's locks and trace hooks around it that was
about a fifth of the gateway's CPU per proxied request (py-spy, issue 18). A provider
call is the simplest HTTP/1.1 there is (a POST with a Content-Length body, a response
framed by Content-Length, chunked encoding or the connection's end), so this class
speaks exactly that, over httpcore's own network backend (connect, TLS, per-operation
timeouts) and raising httpcore's exception types, which the pool maps to httpx's as
before. The interface is the part of httpcore's connection the pool uses:
is_available, has_expired, aclose, plus `request` for a request already in bytes.

Limits: a response head of at most 64 KiB; a chunk-size line of at most 1 KiB.
Informational (1xx) responses before the real one are skipped.
"""
from __future__ import annotations

import ssl
import time
from typing import Any, AsyncIterator

import httpcore

MAX_HEAD = 65536
_READ = 65536
_MAX_LINE = 1024
_NEW, _ACTIVE, _IDLE, _CLOSED = range(4)


class H1Connection:
    __slots__ = ("_origin", "_ssl", "_keepalive", "_backend", "_stream", "_state",
                 "_expire_at", "_buf")

    def __init__(self, origin: httpcore.Origin, *, ssl_context: ssl.SSLContext | None,
                 keepalive_expiry: float, backend: Any) -> None:
        self._origin, self._ssl = origin, ssl_context
        self._keepalive, self._backend = keepalive_expiry, backend
        self._stream: Any = None
        self._state = _NEW
        self._expire_at = 0.0
        self._buf = bytearray()

    # ------------------------------------------------------------ the pool's view

    def is_available(self) -> bool:
        return self._state == _IDLE

    def has_expired(self) -> bool:
        if self._state != _IDLE:
            return False
        # An idle socket that turned readable means the server hung up (or sent
        # bytes nobody asked for): either way it can't carry a request.
        return time.monotonic() > self._expire_at or \
            self._stream.get_extra_info("is_readable")

    async def aclose(self) -> None:
        self._state = _CLOSED
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()

    # ------------------------------------------------------------ one exchange

    async def request(self, head: bytes, body: bytes, timeouts: dict,
                      ) -> tuple[int, bytes, list[tuple[bytes, bytes]], "Body"]:
        """Send a request given as its head (request line and headers, with the final
        CRLF) and body; the response's status, reason, headers and body stream."""
        if self._state == _CLOSED:
            raise httpcore.ConnectionNotAvailable()
        if self._stream is None:
            await self._connect(timeouts.get("connect"))
        self._state = _ACTIVE
        read_timeout = timeouts.get("read")
        try:
            await self._stream.write(head + body if len(body) < 65536 else head,
                                     timeouts.get("write"))
            if len(body) >= 65536:
                await self._stream.write(body, timeouts.get("write"))
            while True:
                status, reason, headers, framing, close = await self._read_head(read_timeout)
                if not 100 <= status < 200 or status == 101:
                    break
        except BaseException:
            await self.aclose()
            raise
        return status, reason, headers, Body(self, framing, close, read_timeout)

    async def _connect(self, timeout: float | None) -> None:
        origin = self._origin
        host = origin.host.decode("ascii")
        stream = await self._backend.connect_tcp(host, origin.port, timeout=timeout)
        if origin.scheme == b"https":
            try:
                stream = await stream.start_tls(self._ssl, server_hostname=host,
                                                timeout=timeout)
            except BaseException:
                await stream.aclose()
                raise
        self._stream = stream

    async def _fill(self, timeout: float | None) -> bool:
        data = await self._stream.read(_READ, timeout)
        self._buf += data
        return bool(data)

    async def _read_head(self, timeout: float | None) -> tuple:
        buf = self._buf
        start = 0
        while (end := buf.find(b"\r\n\r\n", start)) < 0:
            if len(buf) > MAX_HEAD:
                raise httpcore.RemoteProtocolError("upstream response head too large")
            start = max(0, len(buf) - 3)
            if not await self._fill(timeout):
                if buf:
                    raise httpcore.RemoteProtocolError(
                        "peer closed connection in the middle of a response head")
                raise httpcore.RemoteProtocolError(
                    "Server disconnected without sending a response.")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[:end + 4]
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise httpcore.RemoteProtocolError("malformed upstream status line")
        status = int(code)
        close = version == b"HTTP/1.0"
        length, chunked = None, False
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name[-1:] in b" \t":
                raise httpcore.RemoteProtocolError("malformed upstream header line")
            value = value.strip(b" \t")
            lower = name.lower()
            if lower == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise httpcore.RemoteProtocolError("invalid upstream Content-Length")
                length = int(value)
            elif lower == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif lower == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    close = True
                elif b"keep-alive" in tokens:
                    close = False
            headers.append((name, value))
        if chunked:
            framing: int | None = -1
        elif status in (204, 304) or 100 <= status < 200:
            framing = 0
        else:
            framing = length   # None: until the connection ends
            if length is None:
                close = True
        return status, reason, headers, framing, close

    def _done(self, close: bool) -> None:
        if close or self._state != _ACTIVE:
            self._state = _CLOSED
            return
        self._state = _IDLE
        self._expire_at = time.monotonic() + self._keepalive


class Body:
    """A response body as httpx reads it (async iteration, aclose). Read to its end it
    leaves the connection idle for the next request; closed early, it closes it."""

    __slots__ = ("_conn", "_framing", "_close", "_timeout", "_complete")

    def __init__(self, conn: H1Connection, framing: int | None, close: bool,
                 timeout: float | None) -> None:
        self._conn, self._framing, self._close, self._timeout = conn, framing, close, timeout
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        framing = self._framing
        if framing == -1:
            parts = self._chunked()
        elif framing is None:
            parts = self._until_close()
        else:
            parts = self._sized(framing)
        async for part in parts:
            yield part
        self._complete = True
        self._conn._done(self._close)
        if self._close:
            await self._conn.aclose()

    async def _sized(self, left: int) -> AsyncIterator[bytes]:
        conn, buf = self._conn, self._conn._buf
        while left:
            if not buf and not await conn._fill(self._timeout):
                raise httpcore.RemoteProtocolError(
                    "peer closed connection without sending complete message body: "
                    f"{left} bytes missing")
            if len(buf) <= left:
                part = bytes(buf)
                buf.clear()
            else:
                part = bytes(buf[:left])
                del buf[:left]
            left -= len(part)
            yield part

    async def _until_close(self) -> AsyncIterator[bytes]:
        conn, buf = self._conn, self._conn._buf
        while True:
            if buf:
                part = bytes(buf)
                buf.clear()
                yield part
            if not await conn._fill(self._timeout):
                return

    async def _line(self) -> bytes:
        conn, buf = self._conn, self._conn._buf
        while (end := buf.find(b"\r\n")) < 0:
            if len(buf) > _MAX_LINE:
                raise httpcore.RemoteProtocolError("malformed chunked encoding")
            if not await conn._fill(self._timeout):
                raise httpcore.RemoteProtocolError(
                    "peer closed connection without sending complete message body: "
                    "incomplete chunked read")
        line = bytes(buf[:end])
        del buf[:end + 2]
        return line

    async def _chunked(self) -> AsyncIterator[bytes]:
        while True:
            size_text = (await self._line()).partition(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpcore.RemoteProtocolError("malformed chunked encoding") from None
            if size < 0:
                raise httpcore.RemoteProtocolError("malformed chunked encoding")
            if size == 0:
                while await self._line():   # trailers, up to the blank line
                    pass
                return
            async for part in self._sized(size):
                yield part
            if await self._line() != b"":
                raise httpcore.RemoteProtocolError("malformed chunked encoding")

    async def aclose(self) -> None:
        if not self._complete:
            self._complete = True
            await self._conn.aclose()   # the rest of the body would be in the way
