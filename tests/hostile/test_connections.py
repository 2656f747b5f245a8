"""Connections the server must end or absorb, on raw sockets against a running gateway:
`Connection: close`, an idle keep-alive connection, headers that arrive too slowly, a
WebSocket handshake to a path Prism does not serve, and a burst of 1,000 simultaneous
connections with the default listen backlog."""
from __future__ import annotations

import resource
import socket
import time

import pytest
import trio

import harness

KEEP_ALIVE = 1.5


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gateway = harness.start_gateway(tmp_path_factory.mktemp("conn"), None,
                                    server={"keep_alive_timeout": KEEP_ALIVE})
    yield gateway
    gateway.stop()


def _connect(gw) -> socket.socket:
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _read_until_eof(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes; the seconds that took. Fails if the
    connection is still open after `limit` seconds."""
    sock.settimeout(limit)
    start, data = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except socket.timeout:
        pytest.fail(f"server kept the connection open for {limit}s; got {data[:200]!r}")
    return data, time.monotonic() - start


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and a Content-Length body) from a kept-alive socket."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_connection_close_is_honoured_at_once(gw):
    with _connect(gw) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, took = _read_until_eof(s, 5.0)
    assert data.startswith(b"HTTP/1.1 200") and b'"status"' in data
    assert took < 1.0


def test_connection_close_after_a_post_with_a_body(gw):
    body = b'{"name": "x"}'
    with _connect(gw) as s:
        s.sendall(b"POST /-/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Authorization: Bearer wrong\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        data, took = _read_until_eof(s, 5.0)
    assert data.startswith(b"HTTP/1.1 401") and took < 1.0


def test_idle_keep_alive_connection_is_closed_after_the_timeout(gw):
    with _connect(gw) as s:
        for _ in range(2):   # the timer is re-armed after every response, not only once
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(s).startswith(b"HTTP/1.1 200")
        data, took = _read_until_eof(s, KEEP_ALIVE + 5.0)
    assert data == b"" and KEEP_ALIVE - 0.5 <= took <= KEEP_ALIVE + 2.0


def test_slow_headers_are_cut_off(gw):
    """A client dripping its request line byte by byte (slowloris) holds a descriptor
    for keep_alive_timeout at most, not for as long as it keeps dripping."""
    with _connect(gw) as s:
        start = time.monotonic()
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: slow.example\r\nX-Slow: " + b"a" * 200:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            s.settimeout(0.25)
            try:
                if s.recv(65536) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
            if time.monotonic() - start > KEEP_ALIVE + 5:
                break
    assert closed, "server still reading headers long after keep_alive_timeout"
    assert time.monotonic() - start <= KEEP_ALIVE + 3.0


def test_websocket_to_an_unknown_path_is_a_clean_404(gw):
    with _connect(gw) as s:
        s.sendall(b"GET /v1/nowhere HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        data = _read_response(s)
    assert data.startswith(b"HTTP/1.1 404"), data[:100]
    assert b'"not_found"' in data and b"Traceback" not in data


@pytest.fixture
def default_gw(tmp_path):
    """The default [server] settings (backlog, a keep-alive timeout longer than it takes
    a loaded machine to accept 1,000 connections)."""
    gateway = harness.start_gateway(tmp_path, None)
    yield gateway
    gateway.stop()


def test_a_burst_of_1000_connections_is_not_reset(default_gw):
    """1,000 clients connect at the same moment, then each sends one request: every
    connection is accepted (none reset by an overflowing listen queue) and answered."""
    gw = default_gw
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * n + 200   # both ends live in this process
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"descriptor limit {hard} is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    host, port = gw.url.removeprefix("http://").rsplit(":", 1)
    outcomes: dict[str, int] = {}
    all_connected = trio.Event()
    connected = 0

    async def client() -> None:
        nonlocal connected
        try:
            stream = await trio.open_tcp_stream(host, int(port))
        except OSError as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            connected += 1
            if connected == n:
                all_connected.set()
            return
        connected += 1
        if connected == n:
            all_connected.set()
        async with stream:
            await all_connected.wait()
            try:
                await stream.send_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := await stream.receive_some(65536):
                    data += chunk
                kind = "ok" if data.startswith(b"HTTP/1.1 200") else f"bad {data[:20]!r}"
            except (trio.BrokenResourceError, OSError) as exc:
                kind = type(exc.__cause__ or exc).__name__
            outcomes[kind] = outcomes.get(kind, 0) + 1

    async def main() -> None:
        with trio.fail_after(90):
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(client)

    trio.run(main)
    assert outcomes == {"ok": n}, outcomes
