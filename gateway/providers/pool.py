"""The upstream connection pool of one provider: an httpx transport over httpcore's
connection objects that hands out the most recently used idle connection.

httpcore's own pool scans every pooled connection on each request and on each release,
asking each idle one whether its socket turned readable (one syscall apiece); with a
few dozen keep-alive connections that scan cost more CPU than the request itself. Here
idle connections form a stack per origin. A request pops the top one and checks only
that one; since the stack is ordered by release time, when the top has sat idle past
the keep-alive expiry all below it have too, and they are closed together. The warm
connection is the likeliest to still be open and in cache, and the cold ones at the
bottom age out instead of being kept alive by round-robin use.

Limits mirror httpx.Limits: at most `max_connections` requests in flight (a request
waits up to the pool timeout for a slot, then fails with httpx.PoolTimeout), and
connections idle longer than `keepalive_expiry` are not reused. HTTP/1.1 only: each
connection is a gateway.providers.h1.H1Connection over httpcore's network backend.
"""
from __future__ import annotations

import ssl
import time
from typing import AsyncIterator

import httpcore
import httpx
import trio
# httpx's one map of httpcore failures to its own exception types, so callers keep
# catching httpx.HTTPError exactly as with the default transport.
from httpx._transports.default import map_httpcore_exceptions

from gateway.providers.h1 import H1Connection
from gateway.providers.netstream import LeanBackend


class _Idle:
    __slots__ = ("conn", "since")

    def __init__(self, conn: H1Connection, since: float) -> None:
        self.conn, self.since = conn, since


class LifoPool(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, keepalive_expiry: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = trio.Semaphore(max_connections)
        self._keepalive = keepalive_expiry
        self._ssl = ssl_context
        self._backend = LeanBackend()
        self._idle: dict[tuple, list[_Idle]] = {}
        self._stale: list[H1Connection] = []
        self._closed = False

    # ------------------------------------------------------------ check out / in

    async def _take(self, origin: httpcore.Origin) -> H1Connection:
        while self._stale:
            await self._stale.pop().aclose()
        stack = self._idle.get(_key(origin))
        now = time.monotonic()
        while stack:
            top = stack.pop()
            if now - top.since > self._keepalive:
                # Everything below was released earlier still: all stale.
                stale = [top, *stack]
                stack.clear()
                for idle in stale:
                    await idle.conn.aclose()
                break
            if top.conn.is_available() and not top.conn.has_expired():
                return top.conn
            await top.conn.aclose()   # the upstream hung up while it sat idle
        if origin.scheme == b"https" and self._ssl is None:
            self._ssl = httpx.create_ssl_context(trust_env=False)
            self._ssl.set_alpn_protocols(["http/1.1"])
        return H1Connection(origin, ssl_context=self._ssl, keepalive_expiry=self._keepalive,
                            backend=self._backend)

    def _give_back(self, origin: httpcore.Origin, conn: H1Connection) -> None:
        if self._closed or not conn.is_available():
            return   # closed by its response (error, Connection: close) or by aclose()
        stack = self._idle.setdefault(_key(origin), [])
        now = time.monotonic()
        # Prune from the cold end by release time only: no syscall, amortised O(1).
        while stack and now - stack[0].since > self._keepalive:
            self._stale.append(stack.pop(0).conn)   # closed by the next request
        stack.append(_Idle(conn, now))

    async def _acquire_slot(self, timeouts: dict) -> None:
        try:
            self._slots.acquire_nowait()
            return
        except trio.WouldBlock:
            pass
        timeout = timeouts.get("pool")
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            await self._slots.acquire()
            return
        raise httpx.PoolTimeout("no upstream connection became free in time")

    # ------------------------------------------------------------ httpx transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = httpcore.Origin(url.raw_scheme, url.raw_host,
                                 url.port or (443 if url.raw_scheme == b"https" else 80))
        body = b"".join([part async for part in request.stream])
        headers = [(k, v) for k, v in request.headers.raw
                   if k.lower() not in (b"transfer-encoding", b"content-length")]
        if body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            headers.append((b"Content-Length", b"%d" % len(body)))
        head = request_head(request.method.encode("ascii"), url.raw_path, headers)
        return await self.send(origin, head, body, request.extensions.get("timeout", {}),
                               request)

    async def send(self, origin: httpcore.Origin, head: bytes, body: bytes, timeouts: dict,
                   request: httpx.Request | None = None) -> httpx.Response:
        """One request given as bytes (gateway.providers.h1), answered as httpx's response."""
        if self._closed:
            raise httpx.ConnectError("the upstream pool is closed", request=request)
        await self._acquire_slot(timeouts)
        conn = None
        try:
            conn = await self._take(origin)
            with map_httpcore_exceptions():
                status, reason, headers, stream = await conn.request(head, body, timeouts)
        except BaseException:
            with trio.CancelScope(shield=True):
                if conn is not None:
                    await conn.aclose()
            self._slots.release()
            raise
        return httpx.Response(status_code=status, headers=headers,
                              stream=_Body(self, origin, conn, stream),
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
                              request=request)

    async def aclose(self) -> None:
        self._closed = True
        stacks, self._idle = self._idle, {}
        with trio.CancelScope(shield=True):
            for conn in [i.conn for stack in stacks.values() for i in stack] + self._stale:
                await conn.aclose()
            self._stale.clear()


def _key(origin: httpcore.Origin) -> tuple:
    return (origin.scheme, origin.host, origin.port)   # Origin itself is unhashable


def request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """An HTTP/1.1 request head; a CR, LF or NUL in a header refuses the request."""
    lines = b"".join([b"%s: %s\r\n" % (k, v) for k, v in headers])
    if lines.count(b"\n") != len(headers) or lines.count(b"\r") != len(headers) \
            or b"\0" in lines or b" " in target or b"\n" in target:
        raise httpx.LocalProtocolError("illegal character in a request header or target")
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, lines)


class _Body(httpx.AsyncByteStream):
    """The response body; closing it hands the connection back to the pool exactly once."""

    __slots__ = ("_pool", "_origin", "_conn", "_stream", "_done")

    def __init__(self, pool: LifoPool, origin: httpcore.Origin, conn: H1Connection,
                 stream) -> None:
        self._pool, self._origin, self._conn, self._stream = pool, origin, conn, stream
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with map_httpcore_exceptions():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            with trio.CancelScope(shield=True):
                await self._stream.aclose()
        finally:
            self._pool._give_back(self._origin, self._conn)
            self._pool._slots.release()


class _Post:
    """What every POST to one path shares: the origin and the head without its length."""

    __slots__ = ("origin", "prefix")

    def __init__(self, url: httpx.URL, headers: httpx.Headers) -> None:
        scheme = url.raw_scheme
        self.origin = httpcore.Origin(scheme, url.raw_host,
                                      url.port or (443 if scheme == b"https" else 80))
        # httpx's own order: Host first, then the client's headers.
        head = request_head(b"POST", url.raw_path, [(b"Host", url.netloc), *headers.raw])
        self.prefix = head[:-2]   # without the blank line: Content-Length goes there


class UpstreamClient(httpx.AsyncClient):
    """The provider's httpx client, plus `post` requests built once per provider.

    The generic client path re-parses and merges the base URL and default headers, runs
    the auth and redirect machinery and feeds every response to the cookie jar, on each
    call; even a bare httpx.Request copies and normalises its headers. A provider posts
    JSON to a handful of fixed paths with fixed headers, so `fast_post` keeps, per path,
    the request head in bytes and hands it straight to the pool (its response carries
    no httpx.Request: nothing of ours reads one). With another transport (tests pass
    their own) or query parameters it is plain `client.send`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._pool = self._transport if isinstance(self._transport, LifoPool) else None
        self._posts: dict[str, _Post] = {}
        self._timeouts = self.timeout.as_dict()

    async def fast_post(self, path: str, content: bytes, *, params: dict | None = None,
                        stream: bool = False) -> httpx.Response:
        if self._pool is None or params:
            request = self.build_request("POST", path, content=content, params=params)
            return await self.send(request, stream=stream)
        post = self._posts.get(path)
        if post is None:
            post = self._posts[path] = _Post(self._merge_url(path), self.headers)
        head = post.prefix + b"Content-Length: %d\r\n\r\n" % len(content)
        response = await self._pool.send(post.origin, head, content, self._timeouts)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response
