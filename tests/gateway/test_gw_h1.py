"""gateway/providers/h1.py: the upstream HTTP/1.1 connection, against raw answers.

A trio server answers each request with the bytes a test scripts (by path), so every
framing an upstream may use is seen as it arrives on the wire: Content-Length, chunked
(with extensions and trailers, split across writes), until-close, 1xx before the
answer, Connection: close, and broken answers, which must raise httpx's errors.
"""
from __future__ import annotations

import httpx
import pytest
import trio

from gateway.providers.pool import LifoPool, UpstreamClient
from test_gw_pool import requests

ANSWERS: dict[bytes, list[bytes]] = {
    b"/sized": [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello"],
    b"/chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
                  b"lo\r\n", b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"],
    b"/continue": [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                   b"Content-Length: 2\r\n\r\nok"],
    b"/close": [b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye"],
    b"/eof": [b"HTTP/1.1 200 OK\r\n\r\nuntil the end"],
    b"/empty": [b"HTTP/1.1 204 No Content\r\n\r\n"],
    b"/short": [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nnot fifty"],
    b"/garbage": [b"SMTP ready\r\n\r\n"],
    b"/badchunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
    b"/nothing": [],
    b"/split-head": [b"HTTP/1.1 200 OK\r\nConte", b"nt-Length: 2\r\n", b"\r\nhi"],
}
CLOSE_AFTER = {b"/close", b"/eof", b"/short", b"/garbage", b"/badchunk", b"/nothing"}


class Upstream:
    def __init__(self) -> None:
        self.accepted = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(trio.serve_tcp, self._handle, 0)
        self.port = listeners[0].socket.getsockname()[1]

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            async for head, body in requests(stream):
                self.requests.append(head + b"\r\n\r\n" + body)
                path = head.split(b" ")[1]
                for part in ANSWERS[path]:
                    await stream.send_all(part)
                    await trio.sleep(0.01)
                if path in CLOSE_AFTER:
                    await stream.aclose()
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return


@pytest.fixture
async def upstream(nursery):
    up = Upstream()
    await up.serve(nursery)
    return up


def client(up: Upstream) -> UpstreamClient:
    return UpstreamClient(base_url=f"http://127.0.0.1:{up.port}", headers={"x-key": "k"},
                          transport=LifoPool(max_connections=4, keepalive_expiry=30.0),
                          timeout=httpx.Timeout(5.0))


async def test_each_framing_is_read_whole_and_the_connection_reused(upstream):
    async with client(upstream) as c:
        r = await c.fast_post("/sized", b"{}")
        assert (r.status_code, r.content, r.headers["x-a"]) == (200, b"hello", "1")
        r = await c.fast_post("/chunked", b"{}")
        assert r.content == b"hello world"
        r = await c.fast_post("/continue", b"{}")
        assert (r.status_code, r.content) == (201, b"ok")
        r = await c.fast_post("/empty", b"{}")
        assert (r.status_code, r.content) == (204, b"")
        r = await c.fast_post("/split-head", b"{}")
        assert r.content == b"hi"
        assert upstream.accepted == 1   # all of those on one kept-alive connection
        assert (await c.fast_post("/close", b"{}")).content == b"bye"
        assert (await c.fast_post("/eof", b"{}")).content == b"until the end"
        assert (await c.fast_post("/sized", b"{}")).content == b"hello"
        assert upstream.accepted == 3   # a new connection after each closing answer


async def test_a_streamed_chunked_body_arrives_in_parts(upstream):
    async with client(upstream) as c:
        r = await c.fast_post("/chunked", b"{}", stream=True)
        parts = [p async for p in r.aiter_raw()]
        await r.aclose()
        assert b"".join(parts) == b"hello world" and len(parts) >= 2
        assert (await c.fast_post("/sized", b"{}")).content == b"hello"
        assert upstream.accepted == 1


async def test_a_body_closed_early_closes_its_connection(upstream):
    async with client(upstream) as c:
        r = await c.fast_post("/chunked", b"{}", stream=True)
        async for _ in r.aiter_raw():
            break
        await r.aclose()
        assert (await c.fast_post("/sized", b"{}")).content == b"hello"
        assert upstream.accepted == 2


@pytest.mark.parametrize("path, error", [
    (b"/short", httpx.RemoteProtocolError),
    (b"/garbage", httpx.RemoteProtocolError),
    (b"/badchunk", httpx.RemoteProtocolError),
    (b"/nothing", httpx.RemoteProtocolError),
])
async def test_broken_answers_raise_httpx_errors(upstream, path, error):
    async with client(upstream) as c:
        with pytest.raises(error):
            await c.fast_post(path.decode(), b"{}")
        # The pool is whole afterwards: its slot is free and a new connection serves.
        assert (await c.fast_post("/sized", b"{}")).content == b"hello"


async def test_requests_leave_as_http11_with_their_headers(upstream):
    async with client(upstream) as c:
        await c.fast_post("/sized", b'{"a": 1}')
        r = await c.post("/sized", content=b"xyz", headers={"x-extra": "e"})
        assert r.content == b"hello"
    fast, generic = upstream.requests
    assert fast.startswith(b"POST /sized HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nx-key: k\r\n" in fast and fast.endswith(b"Content-Length: 8\r\n\r\n{\"a\": 1}")
    assert b"x-extra: e" in generic and generic.endswith(b"\r\n\r\nxyz")


async def test_a_header_with_a_newline_is_refused_before_sending(upstream):
    async with client(upstream) as c:
        with pytest.raises(httpx.LocalProtocolError):
            await c.post("/sized", content=b"x", headers={"x-bad": "a\r\nInjected: 1"})
    assert upstream.requests == []
