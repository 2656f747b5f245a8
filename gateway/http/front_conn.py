"""One connection of the lean HTTP/1.1 front (gateway/http/front.py).

Two tasks per connection, for the connection's whole life: the reader only reads,
appending to the connection's buffer; the worker (the connection's own task) takes
requests off the buffer and runs the ASGI app inline, then the next. So a client that
hangs up is seen at once, by the reader, whatever the app is doing, without a task,
nursery or cancel scope per request: the reader wakes whoever waits on the
connection (a `receive`) and calls the disconnect callback the app registered through
the `prism.on_disconnect` scope extension (the lean chat path cancels its request
with it). Plain ASGI apps get `http.disconnect` from `receive` as usual.

Timeouts: a connection that waits keep_alive_timeout for a head (from its start or the
end of the last answer) is closed by the reader, whose cancel scope is renewed only
when its deadline passes; shutdown cancels it while idle. The
reader stops reading past `_MAX_BUFFER` unread bytes until the worker takes some.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

import trio
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.utils import parse_socket_addr

from gateway.http import h1head
from gateway.http.h1head import BAD_HEAD, Refuse

log = logging.getLogger("prism.http.front")

MAX_RECV = 65536
_MAX_BUFFER = 262144
_NO_BODY = frozenset((204, 304))
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)


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


class Connection:
    def __init__(self, front: Any, wrapper: Any, config: Any, context: Any, state: Any,
                 stream: trio.SocketStream) -> None:
        self.front = front
        self.wrapper, self.config, self.context, self.state = wrapper, config, context, state
        self.app = front.app
        self.stream = stream
        self.sock = stream.socket
        self.buf = bytearray()
        self.gone = False          # the client hung up (or the socket broke)
        self.closing = False       # the reader has stopped: serve nothing more
        self.handoff: bytes | None = None
        self.max_head = config.h11_max_incomplete_size
        self.scope = trio.CancelScope()   # the reader's current one; see _read
        self.idle_since: float | None = trio.current_time()   # waiting for a head since
        # The worker side waits in `changed`, the reader in `space` when the buffer is
        # full; each is woken only if someone waits (an empty lot's unpark still costs).
        self.changed = trio.lowlevel.ParkingLot()
        self.space = trio.lowlevel.ParkingLot()
        self.on_gone: Callable[[], Any] | None = None
        self.extensions = {"prism.on_disconnect": self._register}
        self._request_state(False, False)

    def _request_state(self, head_only: bool, http10: bool) -> None:
        self.body_left = 0
        self.body_started = False
        self.response_done = self.started = self.head_sent = self.finished = False
        self.chunked = False
        self.no_body = head_only
        self.http10 = http10
        self.keep_alive = True
        self.pending: tuple[int, list] | None = None

    def _register(self, callback: Callable[[], Any]) -> None:
        """prism.on_disconnect: `callback()` runs if the client hangs up before the
        answer is done (at once if it already has)."""
        if self.gone:
            callback()
        else:
            self.on_gone = callback

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
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read)
                try:
                    await self._work(client, server)
                finally:
                    nursery.cancel_scope.cancel()
            if self.handoff is not None:   # hypercorn's from here on, bytes read replayed
                replay = _Replay(self.stream, self.handoff + bytes(self.buf))
                self.buf.clear()
                front.open -= 1
                try:
                    await TCPServer(self.wrapper, self.config, self.context, self.state, replay)
                finally:
                    front.open += 1
                return
        except OSError:
            pass
        finally:
            front.open -= 1
            with trio.CancelScope(shield=True):
                await self._close()

    async def _read(self) -> None:
        buf, stream, changed, space = self.buf, self.stream, self.changed, self.space
        keep_alive = self.config.keep_alive_timeout
        try:
            while True:
                # The deadline is checked lazily: when it passes, the connection closes
                # only if it has really waited keep_alive_timeout for a head; otherwise
                # a new scope runs to the new end (so no deadline moves per request).
                # Serving a request (a long stream, say), the next look is further off:
                # with 10,000 open streams a renewal every keep_alive_timeout each was
                # hundreds of cancellations a second.
                scope = self.scope = trio.CancelScope(
                    deadline=self.idle_since + keep_alive if self.idle_since is not None
                    else trio.current_time() + 4 * keep_alive)
                if self.idle_since is not None and not buf:
                    self.front.idle.add(scope)
                with scope:
                    while True:
                        while len(buf) > _MAX_BUFFER:
                            await space.park()
                        data = await stream.receive_some(MAX_RECV)
                        if not data:
                            self._hung_up()
                            return
                        buf += data
                        if changed:
                            changed.unpark_all()
                self.front.idle.discard(scope)
                if self.front.closing and self.idle_since is not None:
                    return   # shutdown, and no request is being served
                if self.idle_since is not None and \
                        trio.current_time() - self.idle_since >= keep_alive:
                    return   # as hypercorn: no head within keep_alive_timeout closes
        except (*_BROKEN, OSError):
            self._hung_up()
        finally:
            self.closing = True
            self.front.idle.discard(self.scope)
            if changed:
                changed.unpark_all()

    def _hung_up(self) -> None:
        self.gone = True
        self.keep_alive = False
        callback, self.on_gone = self.on_gone, None
        if callback is not None:
            callback()

    async def _next_head(self) -> bytearray | None:
        """The next request's head, once it is in; None to stop. While it waits the
        connection is idle (idle_since): the reader's deadline applies, and shutdown
        may close it (front.idle)."""
        buf = self.buf
        idle = self.front.idle
        self.idle_since = trio.current_time()
        try:
            while True:
                end = buf.find(b"\r\n\r\n")
                if 0 <= end <= self.max_head:
                    raw = buf[:end]
                    del buf[:end + 4]
                    if self.space:
                        self.space.unpark_all()
                    return raw
                if end > self.max_head or len(buf) > self.max_head:
                    await self._write(h1head.error_response(431, "Request head too large"))
                    return None
                if self.closing or self.front.closing:
                    return None
                if not buf:
                    idle.add(self.scope)
                await self.changed.park()
                idle.discard(self.scope)
        finally:
            idle.discard(self.scope)
            self.idle_since = None

    async def _work(self, client: Any, server: Any) -> None:
        while not self.gone:
            raw = await self._next_head()
            if raw is None:
                return
            try:
                request = h1head.parse_request(raw)
            except Refuse as refusal:
                await self._write(h1head.error_response(refusal.status, str(refusal)))
                return
            if request is None:
                self.handoff = bytes(raw) + b"\r\n\r\n"
                return
            await self._serve(request, client, server)
            if not self.keep_alive or self.front.closing:
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

    # ------------------------------------------------------------ one request

    async def _serve(self, request: h1head.Request, client: Any, server: Any) -> None:
        self._request_state(request.method == "HEAD", request.http10)
        self.body_left = request.length
        self.keep_alive = request.keep_alive
        scope = {
            "type": "http", "asgi": {"spec_version": "2.1", "version": "3.0"},
            "http_version": "1.0" if request.http10 else "1.1", "method": request.method,
            "scheme": "http", "path": request.path, "raw_path": request.raw_path,
            "query_string": request.query, "root_path": self.config.root_path,
            "headers": request.headers, "client": client, "server": server,
            "state": self.state.copy(), "extensions": self.extensions,
        }
        try:
            await self.app(scope, self.receive, self.send)
        except Exception:
            log.exception("Error in ASGI Framework")
            self.keep_alive = False
        except BaseException:
            self.keep_alive = False
            raise
        finally:
            self.on_gone = None
            self.response_done = True
            if self.changed:
                self.changed.unpark_all()
        if self.gone:
            return
        if not self.started:
            self.keep_alive = False
            await self._write(h1head.error_response(500, ""))
        elif self.pending is not None or not self.head_sent:
            # The app sent the start but no body message: an empty, complete answer.
            await self.send({"type": "http.response.body", "body": b""})
        if not self.finished or self.body_left:
            # Cut off (the framing can't recover), or a body left unread (the next
            # request can't be found): this connection serves no more.
            self.keep_alive = False

    # ------------------------------------------------------------ ASGI callables

    async def receive(self) -> dict:
        buf = self.buf
        if self.body_left or not self.body_started:
            self.body_started = True
            left = self.body_left
            if left == 0:
                return {"type": "http.request", "body": b"", "more_body": False}
            while not buf and not self.closing:
                await self.changed.park()
            if not buf:
                self.keep_alive = False
                return {"type": "http.disconnect"}
            if len(buf) <= left:
                body = bytes(buf)
                buf.clear()
            else:
                body = bytes(buf[:left])
                del buf[:left]
            if self.space:
                self.space.unpark_all()
            self.body_left = left = left - len(body)
            return {"type": "http.request", "body": body, "more_body": left > 0}
        while not self.closing and not self.response_done:
            await self.changed.park()
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
        out = self._head(more, len(body)) if self.pending is not None else b""
        if self.no_body:
            data = out
        elif self.chunked:
            data = out + (b"%x\r\n%s\r\n" % (len(body), body) if body else b"")
            if not more:
                data += b"0\r\n\r\n"
        else:
            data = out + body if out else body
        if not more:
            self.finished = self.response_done = True
            if self.changed:
                self.changed.unpark_all()
        if data:
            await self._write(data)

    async def _write(self, data: bytes) -> None:
        if self.gone:
            return
        # Nearly always the socket takes the whole answer (or stream event) at once:
        # one non-blocking write, without trio's send machinery and its checkpoint.
        # What does not fit goes through send_all, which waits for room.
        try:
            sent = os.write(self.sock.fileno(), data)   # -1 once closed: EBADF
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = -1
        try:
            if sent == len(data):
                return
            if sent >= 0:
                await self.stream.send_all(data[sent:] if sent else data)
                return
        except (*_BROKEN, OSError):
            pass
        self._hung_up()
        if self.changed:
            self.changed.unpark_all()

    def _head(self, more: bool, size: int) -> bytes:
        status, headers = self.pending
        self.pending = None
        self.head_sent = True
        lines = [h1head.status_line(status), h1head.date.header()]
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
        if BAD_HEAD.search(head):
            raise ValueError("a response header holds a CR, LF or NUL")
        return head
