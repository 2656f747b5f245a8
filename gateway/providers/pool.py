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
connections idle longer than `keepalive_expiry` are not reused. HTTP/1.1 only, like the
client factory configured before.
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

from gateway.providers.netstream import LeanBackend


class _Idle:
    __slots__ = ("conn", "since")

    def __init__(self, conn: httpcore.AsyncHTTPConnection, since: float) -> None:
        self.conn, self.since = conn, since


class LifoPool(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int, keepalive_expiry: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = trio.Semaphore(max_connections)
        self._keepalive = keepalive_expiry
        self._ssl = ssl_context
        self._backend = LeanBackend()
        self._idle: dict[tuple, list[_Idle]] = {}
        self._stale: list[httpcore.AsyncHTTPConnection] = []
        self._closed = False

    # ------------------------------------------------------------ check out / in

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
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
        return httpcore.AsyncHTTPConnection(
            origin, ssl_context=self._ssl, keepalive_expiry=self._keepalive,
            http1=True, http2=False, network_backend=self._backend)

    def _give_back(self, origin: httpcore.Origin, conn: httpcore.AsyncHTTPConnection) -> None:
        if self._closed or not conn.is_available():
            return   # closed by its response (error, Connection: close) or by aclose()
        stack = self._idle.setdefault(_key(origin), [])
        now = time.monotonic()
        # Prune from the cold end by release time only: no syscall, amortised O(1).
        while stack and now - stack[0].since > self._keepalive:
            self._stale.append(stack.pop(0).conn)   # closed by the next request
        stack.append(_Idle(conn, now))

    async def _acquire_slot(self, request: httpx.Request | httpcore.Request) -> None:
        try:
            self._slots.acquire_nowait()
            return
        except trio.WouldBlock:
            pass
        timeout = request.extensions.get("timeout", {}).get("pool")
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            await self._slots.acquire()
            return
        raise httpx.PoolTimeout("no upstream connection became free in time")

    # ------------------------------------------------------------ httpx transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = httpcore.Origin(url.raw_scheme, url.raw_host,
                                 url.port or (443 if url.raw_scheme == b"https" else 80))
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        return await self.send_core(origin, core_request, request)

    async def send_core(self, origin: httpcore.Origin, core_request: httpcore.Request,
                        request: httpx.Request | None = None) -> httpx.Response:
        """One request as httpcore's own object, answered as an httpx response."""
        if self._closed:
            raise httpx.ConnectError("the upstream pool is closed", request=request)
        await self._acquire_slot(core_request)
        conn = None
        try:
            conn = await self._take(origin)
            with map_httpcore_exceptions():
                core_response = await conn.handle_async_request(core_request)
        except BaseException:
            with trio.CancelScope(shield=True):
                if conn is not None:
                    await conn.aclose()
            self._slots.release()
            raise
        return httpx.Response(status_code=core_response.status, headers=core_response.headers,
                              stream=_Body(self, origin, conn, core_response.stream),
                              extensions=core_response.extensions, request=request)

    async def aclose(self) -> None:
        self._closed = True
        stacks, self._idle = self._idle, {}
        with trio.CancelScope(shield=True):
            for conn in [i.conn for stack in stacks.values() for i in stack] + self._stale:
                await conn.aclose()
            self._stale.clear()


def _key(origin: httpcore.Origin) -> tuple:
    return (origin.scheme, origin.host, origin.port)   # Origin itself is unhashable


class _Body(httpx.AsyncByteStream):
    """The response body; closing it hands the connection back to the pool exactly once."""

    __slots__ = ("_pool", "_origin", "_conn", "_stream", "_done")

    def __init__(self, pool: LifoPool, origin: httpcore.Origin,
                 conn: httpcore.AsyncHTTPConnection, stream) -> None:
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
    """What every POST to one path shares: the origin, httpcore's URL, the raw headers."""

    __slots__ = ("origin", "url", "headers")

    def __init__(self, url: httpx.URL, headers: httpx.Headers) -> None:
        scheme = url.raw_scheme
        self.origin = httpcore.Origin(scheme, url.raw_host,
                                      url.port or (443 if scheme == b"https" else 80))
        self.url = httpcore.URL(scheme=scheme, host=url.raw_host, port=url.port,
                                target=url.raw_path)
        # httpx's own order: Host first, then the client's headers.
        self.headers = [(b"Host", url.netloc), *headers.raw]


class UpstreamClient(httpx.AsyncClient):
    """The provider's httpx client, plus `post` requests built once per provider.

    The generic client path re-parses and merges the base URL and default headers, runs
    the auth and redirect machinery and feeds every response to the cookie jar, on each
    call; even a bare httpx.Request copies and normalises its headers and is then
    rebuilt as httpcore's request. A provider posts JSON to a handful of fixed paths with
    fixed headers, so `fast_post` keeps, per path, httpcore's URL and the raw headers,
    and hands httpcore's request straight to the pool (its response carries no
    httpx.Request: nothing of ours reads one). With another transport (tests pass their
    own) or query parameters it is plain `client.send`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._pool = self._transport if isinstance(self._transport, LifoPool) else None
        self._posts: dict[str, _Post] = {}
        self._timeout_ext = {"timeout": self.timeout.as_dict()}

    async def fast_post(self, path: str, content: bytes, *, params: dict | None = None,
                        stream: bool = False) -> httpx.Response:
        if self._pool is None or params:
            request = self.build_request("POST", path, content=content, params=params)
            return await self.send(request, stream=stream)
        post = self._posts.get(path)
        if post is None:
            post = self._posts[path] = _Post(self._merge_url(path), self.headers)
        core_request = httpcore.Request(
            b"POST", post.url, headers=[*post.headers, (b"Content-Length", b"%d" % len(content))],
            content=content, extensions=self._timeout_ext)
        response = await self._pool.send_core(post.origin, core_request)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response
