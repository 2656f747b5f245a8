"""A lean HTTP/1.1 front for hypercorn's trio worker.

Under load hypercorn's per-request machinery cost about a third of the gateway's CPU
(py-spy, issue 18): h11's event objects and validation on both sides, a protocol
wrapper, an HTTP stream object, a task spawned per request with a channel feeding it
the body, a lock and a shielded cancel scope per socket write, and an idle-timer task
restarted on every request. Almost every request a gateway sees is the plainest kind of
HTTP/1.1: a head, a Content-Length body, a response.

This module serves exactly those, on plain TCP, in one task per connection that calls
the ASGI app inline: the head is parsed with bytes methods, the body is handed over in
the same `receive` message when it is already buffered, and a response whose body
arrives in one message leaves in one write with its Content-Length. Anything else goes
to hypercorn's own TCPServer for the rest of the connection, with the bytes already
read replayed first: TLS, HTTP/2 (prior knowledge or Upgrade), WebSocket upgrades,
`Expect: 100-continue`, chunked request bodies. So hypercorn remains the server: its
worker, listeners, lifespan, graceful shutdown and every protocol it speaks; this is a
faster path in front of one of them.

ASGI semantics kept: `receive` gives the body, then blocks until the client hangs up
(-> http.disconnect) or the response is complete; `send` never raises on a broken
connection (later messages are dropped and `receive` reports the disconnect), as with
hypercorn. Limits: the head must arrive within keep_alive_timeout and fit in
h11_max_incomplete_size (431 otherwise), body reads time out after read_timeout, and at
most `max_connections` connections are served at once (more are closed on accept).
"""
from __future__ import annotations

import http
import logging
import math
import re
import time
from email.utils import formatdate
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

import trio
import hypercorn.trio.run as hyper_run
from hypercorn.trio import serve as hyper_serve
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.utils import parse_socket_addr

log = logging.getLogger("prism.http.front")

MAX_RECV = 65536
# Bytes of pipelined requests read while an answer is being written; past this the
# connection stops reading until the answer is done.
_MAX_AHEAD = 65536
# Heads these headers mark go to hypercorn (see the module docstring).
_HANDOFF = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"http2-settings"))
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# NUL anywhere, or a CR or LF that is not part of a CRLF.
_BAD_HEAD = re.compile(rb"\x00|\r(?!\n)|(?<!\r)\n")
_NO_BODY = frozenset((204, 304))
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)
_STATUS: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase.encode()
        except ValueError:
            phrase = b""
        line = _STATUS[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    return line


class _Date:
    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second, self.value = -1, b""

    def header(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.value = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self.value


_date = _Date()


class Front:
    """The front of one gateway's hypercorn server (one HyperConfig)."""

    def __init__(self, app: Any, *, max_connections: int) -> None:
        self.app = app
        self.max_connections = max_connections
        self.open = 0
        self.closing = False
        self.idle: set[trio.CancelScope] = set()

    def shutdown(self) -> None:
        """Stop keeping connections alive; close the ones waiting for a request."""
        self.closing = True
        for scope in list(self.idle):
            scope.cancel()


# HyperConfig id -> Front. hypercorn.trio.run builds each connection's handler as
# TCPServer(app, config, context, state)(stream); the stand-in below gives the
# connections of a config registered here to the front, every other to hypercorn.
_fronts: dict[int, Front] = {}


def _server_for(app, config, context, state, stream):
    front = _fronts.get(id(config))
    if front is None or not isinstance(stream, trio.SocketStream):
        return TCPServer(app, config, context, state, stream)
    return Connection(front, app, config, context, state, stream).run()


async def serve(app: Any, config: Any, *, max_connections: int,
                shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn.trio.serve with this front on its plain-TCP connections."""
    front = Front(app, max_connections=max_connections)

    async def trigger() -> None:
        if shutdown_trigger is None:
            await trio.sleep_forever()
        await shutdown_trigger()
        front.shutdown()

    hyper_run.TCPServer = _server_for
    _fronts[id(config)] = front
    try:
        await hyper_serve(app, config, shutdown_trigger=trigger, task_status=task_status)
    finally:
        del _fronts[id(config)]


class _Replay:
    """A socket stream that first gives back bytes the front already read."""

    def __init__(self, stream: trio.SocketStream, data: bytes) -> None:
        self._stream, self._data = stream, data
        self.socket = stream.socket

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._data:
            data, self._data = self._data, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Refuse(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Connection:
    def __init__(self, front: Front, wrapper: Any, config: Any, context: Any, state: Any,
                 stream: trio.SocketStream) -> None:
        self.front = front
        self.wrapper, self.config, self.context, self.state = wrapper, config, context, state
        self.app = front.app
        self.stream = stream
        self.buf = bytearray()
        self.gone = False
        self.max_head = config.h11_max_incomplete_size
        # per request
        self.body_left = 0
        self.body_started = False
        self.response_done = False
        self.watch: trio.CancelScope | None = None
        self.started = False
        self.head_sent = False
        self.finished = False
        self.http10 = False
        self.chunked = False
        self.no_body = False
        self.keep_alive = True
        self.pending: tuple[int, list] | None = None
        self.scope = trio.CancelScope()

    # ------------------------------------------------------------ the connection

    async def run(self) -> None:
        front = self.front
        if front.open >= front.max_connections or front.closing:
            await self.stream.aclose()
            return
        front.open += 1
        try:
            sock = self.stream.socket
            client = parse_socket_addr(sock.family, sock.getpeername())
            server = parse_socket_addr(sock.family, sock.getsockname())
            with self.scope:   # cancelled: the head did not come in time, or shutdown
                await self._loop(client, server)
        except OSError:
            pass
        finally:
            front.open -= 1
            with trio.CancelScope(shield=True):
                await self._close()

    async def _loop(self, client: Any, server: Any) -> None:
        front = self.front
        while not self.gone:
            raw = await self._read_head()
            if raw is None:
                return
            try:
                request = self._parse(raw)
            except _Refuse as refusal:
                await self._write_error(refusal.status, str(refusal))
                return
            if request is None:   # hypercorn's: replay what was read and hand over
                replay = _Replay(self.stream, bytes(raw) + b"\r\n\r\n" + bytes(self.buf))
                self.buf.clear()
                front.open -= 1
                try:
                    await TCPServer(self.wrapper, self.config, self.context, self.state,
                                    replay)
                finally:
                    front.open += 1
                return
            await self._serve(request, client, server)
            if not self.keep_alive or front.closing or self.gone:
                return

    async def _close(self) -> None:
        stream = self.stream
        try:
            if not self.gone:
                await stream.send_eof()
                if self.body_left:
                    # The client may still be sending a body nobody read; closing with
                    # it unread would reset the connection, and the reset can destroy
                    # the answer before the client reads it. Read on for a moment.
                    with trio.move_on_after(1.0):
                        left = 1 << 20
                        while left > 0:
                            data = await stream.receive_some(MAX_RECV)
                            if not data:
                                break
                            left -= len(data)
        except (OSError, *_BROKEN):
            pass
        try:
            await stream.aclose()
        except (OSError, *_BROKEN):
            pass

    async def _read_head(self) -> bytearray | None:
        """The next request's head (without its final CRLFCRLF), or None to close.

        The wait for a head runs under the connection's one cancel scope, whose
        deadline is moved to keep_alive_timeout from now for the wait and back to
        never once the head is in (cheaper than a scope per request); while idle the
        scope is also in front.idle, for shutdown to cancel."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0 and len(buf) <= self.max_head:
            scope = self.scope
            scope.deadline = trio.current_time() + self.config.keep_alive_timeout
            idle = self.front.idle
            waiting = not buf
            if waiting:
                idle.add(scope)
            try:
                while end < 0 and len(buf) <= self.max_head:
                    data = await self.stream.receive_some(MAX_RECV)
                    if not data:
                        return None
                    if waiting:
                        waiting = False
                        idle.discard(scope)
                    start = max(0, len(buf) - 3)
                    buf += data
                    end = buf.find(b"\r\n\r\n", start)
            except _BROKEN:
                return None
            finally:
                idle.discard(scope)
            scope.deadline = math.inf
        if 0 <= end <= self.max_head:
            raw = buf[:end]
            del buf[:end + 4]
            return raw
        await self._write_error(431, "Request head too large")
        return None

    def _parse(self, raw: bytearray) -> tuple | None:
        while raw.startswith(b"\r\n"):   # RFC 9112 2.2: ignore CRLFs before a request
            del raw[:2]
        if _BAD_HEAD.search(raw):
            raise _Refuse(400, "Malformed request head")
        lines = bytes(raw).split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            if lines[0].startswith(b"PRI "):
                return None
            raise _Refuse(400, "Malformed request line")
        method, target, version = parts
        if version != b"HTTP/1.1":
            if version != b"HTTP/1.0":
                if version.startswith(b"HTTP/2"):
                    return None
                raise _Refuse(505 if version.startswith(b"HTTP/") else 400,
                              "Unsupported HTTP version")
        if not _TOKEN.match(method) or not target:
            raise _Refuse(400, "Malformed request line")
        headers = []
        length = None
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.match(name):
                raise _Refuse(400, "Malformed header line")
            name = name.lower()
            value = value.strip(b" \t")
            if name in _HANDOFF:
                return None
            if name == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise _Refuse(400, "Invalid Content-Length")
                length = int(value)
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"upgrade" in tokens:
                    return None
            headers.append((name, value))
        path, _, query = target.partition(b"?")
        try:
            decoded = unquote(path.decode("ascii"))
        except UnicodeDecodeError:
            raise _Refuse(400, "Request target is not ASCII") from None
        return (method.decode("ascii"), version, path, decoded, query, headers, length or 0,
                keep_alive)

    # ------------------------------------------------------------ one request

    async def _serve(self, request: tuple, client: Any, server: Any) -> None:
        method, version, raw_path, path, query, headers, length, keep_alive = request
        self.body_left = length
        self.body_started = False
        self.response_done = self.started = self.head_sent = self.chunked = False
        self.finished = False
        self.no_body = method == "HEAD"
        self.keep_alive = keep_alive
        self.http10 = version == b"HTTP/1.0"
        self.pending = None
        scope = {
            "type": "http", "asgi": {"spec_version": "2.1", "version": "3.0"},
            "http_version": "1.0" if self.http10 else "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": raw_path, "query_string": query,
            "root_path": self.config.root_path, "headers": headers, "client": client,
            "server": server, "state": self.state.copy(), "extensions": {},
        }
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                self.keep_alive = False
                raise
            log.exception("Error in ASGI Framework")
            self.keep_alive = False
        finally:
            self.response_done = True
            self.watch = None
        if self.gone:
            return
        if not self.started:
            self.keep_alive = False
            await self._write_error(500, "")
        elif self.pending is not None or not self.head_sent:
            # The app sent the start but no body message: an empty, complete answer.
            await self.send({"type": "http.response.body", "body": b""})
        if not self.finished:
            self.keep_alive = False   # the answer was cut off; the framing can't recover
        elif self.body_left:
            self.keep_alive = False   # an unread body: the next request can't be found

    # ------------------------------------------------------------ ASGI callables

    async def receive(self) -> dict:
        if self.body_left or not self.body_started:
            self.body_started = True
            left = self.body_left
            if left == 0:
                return {"type": "http.request", "body": b"", "more_body": False}
            buf = self.buf
            if not buf and not self.gone:
                try:
                    with trio.move_on_after(self.config.read_timeout):
                        data = await self.stream.receive_some(MAX_RECV)
                        if not data:
                            self.gone = True
                        buf += data
                except _BROKEN:
                    self.gone = True
                if not buf and not self.gone:
                    self.gone = True   # too slow: treated as a client that left
            if self.gone and not buf:
                self.keep_alive = False
                return {"type": "http.disconnect"}
            if len(buf) <= left:
                body = bytes(buf)
                buf.clear()
            else:
                body = bytes(buf[:left])
                del buf[:left]
            self.body_left = left - len(body)
            return {"type": "http.request", "body": body, "more_body": self.body_left > 0}
        if self.gone or self.response_done:
            return {"type": "http.disconnect"}
        # The body is in: wait for the client to hang up, or for the answer to be done.
        with trio.CancelScope() as watch:
            self.watch = watch
            try:
                while len(self.buf) <= _MAX_AHEAD:
                    data = await self.stream.receive_some(MAX_RECV)
                    if not data:
                        self.gone = True
                        break
                    self.buf += data   # a pipelined request: served after this one
                else:
                    await trio.sleep_forever()
            except _BROKEN:
                self.gone = True
        self.watch = None
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.pending = (int(message["status"]), message.get("headers") or [])
            return
        if kind != "http.response.body":
            return   # trailers, push, early hints: HTTP/1.1 here has none of them
        if not self.started:
            raise RuntimeError("http.response.body before http.response.start")
        if self.finished:
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        out = b""
        if self.pending is not None:
            out = self._head(more, len(body))
        if self.no_body:
            data = out
        elif self.chunked:
            data = out + (b"%x\r\n%s\r\n" % (len(body), body) if body else b"")
            if not more:
                data += b"0\r\n\r\n"
        else:
            data = out + body if out else body
        if not more:
            self._finish()
        if data and not self.gone:
            try:
                await self.stream.send_all(data)
            except _BROKEN:
                self.gone = True
                self.keep_alive = False
                watch = self.watch
                if watch is not None:
                    watch.cancel()

    def _finish(self) -> None:
        self.finished = True
        self.response_done = True
        watch = self.watch
        if watch is not None:
            watch.cancel()

    def _head(self, more: bool, size: int) -> bytes:
        status, headers = self.pending
        self.pending = None
        self.head_sent = True
        lines = [_status_line(status), _date.header()]
        length = None
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                length = value
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
            elif name == b"date":
                lines[1] = b""
            lines.append(b"%s: %s\r\n" % (name, value))
        if status in _NO_BODY or 100 <= status < 200:
            self.no_body = True
        elif length is None:
            if not more:
                if not self.no_body:
                    lines.append(b"content-length: %d\r\n" % size)
            elif self.http10:
                self.keep_alive = False   # the end of the body is the end of the connection
            else:
                self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        if _BAD_HEAD.search(head):
            raise ValueError("a response header holds a CR, LF or NUL")
        return head

    async def _write_error(self, status: int, message: str) -> None:
        body = message.encode()
        data = (_status_line(status) + _date.header()
                + b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
                  b"connection: close\r\n\r\n%s" % (len(body), body))
        self.keep_alive = False
        try:
            with trio.move_on_after(self.config.keep_alive_timeout):
                await self.stream.send_all(data)
        except _BROKEN:
            self.gone = True
