"""The per-provider upstream pool (gateway/providers/pool.py) over real sockets.

The upstream is a small trio HTTP/1.1 server that numbers its connections and says in
each answer which connection carried it, so reuse and ordering are observed from the
outside, not read from the pool's internals.
"""
from __future__ import annotations

import httpx
import pytest
import trio

from gateway.providers.pool import LifoPool


async def requests(stream: trio.SocketStream):
    """Each HTTP/1.1 request on a raw connection, as (head, body); Content-Length only."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = await stream.receive_some(65536)
            if not data:
                return
            buf += data
        head, _, buf = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(buf) < length:
            buf += await stream.receive_some(65536)
        body, buf = buf[:length], buf[length:]
        yield head, body


class Upstream:
    """Keep-alive HTTP/1.1 server: answers `conn=<n>`; `/close` answers then hangs up;
    `/slow` waits for `release` before answering."""

    def __init__(self) -> None:
        self.accepted = 0
        self.release = trio.Event()
        self.port = 0

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(trio.serve_tcp, self._handle, 0)
        self.port = listeners[0].socket.getsockname()[1]

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        n = self.accepted
        try:
            async for head, _ in requests(stream):
                path = head.split(b" ")[1]
                if path == b"/slow":
                    await self.release.wait()
                body = f"conn={n}".encode()
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s"
                                      % (len(body), body))
                if path == b"/close":
                    await stream.aclose()
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


@pytest.fixture
async def upstream(nursery):
    up = Upstream()
    await up.serve(nursery)
    return up


def client(up: Upstream, **kw) -> httpx.AsyncClient:
    pool = LifoPool(max_connections=kw.pop("max_connections", 4),
                    keepalive_expiry=kw.pop("keepalive", 30.0))
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{up.port}", transport=pool,
                             timeout=httpx.Timeout(5.0, pool=kw.pop("pool_timeout", 5.0)))


async def test_sequential_requests_reuse_one_connection(upstream):
    async with client(upstream) as c:
        answers = [(await c.post("/x", content=b"hi")).text for _ in range(5)]
    assert answers == ["conn=1"] * 5
    assert upstream.accepted == 1


async def test_most_recently_released_connection_is_handed_out_first(upstream):
    async with client(upstream) as c:
        # Two requests at once need two connections; the one answered last is warmest.
        async with trio.open_nursery() as n:
            results = []

            async def slow():
                results.append((await c.get("/slow")).text)
            n.start_soon(slow)
            await trio.sleep(0.05)
            assert (await c.get("/fast")).text == "conn=2"   # conn 1 is busy
            upstream.release.set()
        assert results == ["conn=1"]
        # conn 1 was released after conn 2, so it is on top now.
        assert (await c.get("/again")).text == "conn=1"


async def test_upstream_closing_an_idle_connection_costs_no_error(upstream):
    async with client(upstream) as c:
        assert (await c.get("/close")).text == "conn=1"
        await trio.sleep(0.05)   # the server's FIN arrives while the connection is idle
        assert (await c.get("/next")).text == "conn=2"


async def test_connections_idle_past_keepalive_are_not_reused(upstream):
    async with client(upstream, keepalive=0.05) as c:
        assert (await c.get("/a")).text == "conn=1"
        await trio.sleep(0.1)
        assert (await c.get("/b")).text == "conn=2"


async def test_pool_waits_for_a_slot_then_times_out(upstream):
    async with client(upstream, max_connections=1, pool_timeout=0.2) as c:
        async with trio.open_nursery() as n:
            n.start_soon(c.get, "/slow")
            await trio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout):
                await c.get("/blocked")
            upstream.release.set()
        # The slot came back when the slow response was closed.
        assert (await c.get("/after")).text == "conn=1"


async def test_streamed_response_returns_its_connection_on_close(upstream):
    async with client(upstream, max_connections=1, pool_timeout=0.5) as c:
        for _ in range(3):
            async with c.stream("GET", "/s") as r:
                assert (await r.aread()) == b"conn=1"
    assert upstream.accepted == 1


async def test_connect_failure_is_an_httpx_error_and_frees_the_slot():
    with trio.socket.socket() as s:   # a port nothing listens on
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = LifoPool(max_connections=1, keepalive_expiry=5.0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", transport=pool,
                                 timeout=httpx.Timeout(2.0, pool=0.2)) as c:
        for _ in range(2):   # the second would hit PoolTimeout if the slot leaked
            with pytest.raises(httpx.ConnectError):
                await c.get("/")


async def test_fast_post_builds_each_request_once_and_shares_the_pool(upstream):
    from gateway.providers.pool import UpstreamClient
    pool = LifoPool(max_connections=2, keepalive_expiry=30.0)
    async with UpstreamClient(base_url=f"http://127.0.0.1:{upstream.port}/v1", transport=pool,
                              headers={"authorization": "Bearer k"}) as c:
        r = await c.fast_post("/chat", b"{}")
        assert (r.status_code, r.text) == (200, "conn=1")
        streamed = await c.fast_post("/chat", b"{}", stream=True)
        assert (await streamed.aread()) == b"conn=1"
        await streamed.aclose()
        # query parameters take the generic client path, over the same pool
        assert (await c.fast_post("/chat", b"{}", params={"alt": "sse"})).text == "conn=1"
    assert upstream.accepted == 1
