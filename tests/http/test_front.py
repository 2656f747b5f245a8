"""gateway/http/front.py: the lean HTTP/1.1 front, on real sockets, byte by byte.

Plain requests are served by the front; TLS-less oddities (chunked request bodies,
Expect: 100-continue, upgrades) are handed to hypercorn with the bytes already read.
"""
from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

import harness


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    gw = harness.start_gateway(tmp_path_factory.mktemp("front"), sim_url,
                               server={"keep_alive_timeout": 2.0, "max_connections": 6})
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def key(gw) -> str:
    return gw.create_key(credits_usd=5.0)["key"]


def _connect(gw) -> socket.socket:
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(10)
    return sock


class Reader:
    """Parses HTTP/1.1 responses off a socket, as a strict client would."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            assert self._fill(), "connection closed mid-line"
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            assert self._fill(), "connection closed mid-body"
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        status = int(self._line().split(b" ")[1])
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.partition(b":")
            headers[name.decode().lower()] = value.decode().strip()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"]))
        assert headers.get("transfer-encoding") == "chunked", headers
        body = b""
        while True:
            size = int(self._line(), 16)
            if size == 0:
                assert self._line() == b""
                return status, headers, body
            body += self._take(size)
            assert self._take(2) == b"\r\n"

    def closed(self) -> bool:
        try:
            return not self.buf and not self._fill()
        except (ConnectionResetError, TimeoutError):
            return True


def _chat(key: str, content: str = "say: hello", stream: bool = False,
          extra: bytes = b"") -> bytes:
    body = json.dumps({"model": "prism-mini", "stream": stream,
                       "messages": [{"role": "user", "content": content}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def test_keep_alive_and_pipelining(gw, key):
    with _connect(gw) as sock:
        r = Reader(sock)
        sock.sendall(_chat(key, "say: one"))
        status, headers, body = r.response()
        assert status == 200 and headers["content-type"].startswith("application/json")
        assert json.loads(body)["choices"][0]["message"]["content"] == "one"
        assert "date" in headers and "x-request-id" in headers
        # Three requests in one write: three answers, in order, on the same connection.
        sock.sendall(_chat(key, "say: two") + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                     + _chat(key, "say: three"))
        answers = [r.response() for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        assert json.loads(answers[0][2])["choices"][0]["message"]["content"] == "two"
        assert json.loads(answers[2][2])["choices"][0]["message"]["content"] == "three"


def test_a_body_split_across_writes(gw, key):
    raw = _chat(key, "say: split")
    with _connect(gw) as sock:
        for i in range(0, len(raw), 7):
            sock.sendall(raw[i:i + 7])
            time.sleep(0.002)
        status, _, body = Reader(sock).response()
    assert status == 200 and b"split" in body


def test_a_stream_is_chunked_and_complete(gw, key):
    with _connect(gw) as sock:
        r = Reader(sock)
        sock.sendall(_chat(key, "say: streamed words here", stream=True))
        status, headers, body = r.response()
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        assert headers["transfer-encoding"] == "chunked"
        text = body.decode()
        assert text.rstrip().endswith("data: [DONE]")
        deltas = [json.loads(line[6:]) for line in text.splitlines()
                  if line.startswith("data: {")]
        said = "".join(d["choices"][0]["delta"].get("content") or ""
                       for d in deltas if d["choices"])
        assert said == "streamed words here"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")   # still alive after it
        assert r.response()[0] == 200


def test_head_http10_and_connection_close(gw):
    with _connect(gw) as sock:
        r = Reader(sock)
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = r.response(head_only=True)
        assert status == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = r.response()   # the HEAD left no body behind to misparse
        assert status == 200 and body
    for request in (b"GET /healthz HTTP/1.0\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"):
        with _connect(gw) as sock:
            r = Reader(sock)
            sock.sendall(request)
            status, headers, _ = r.response()
            assert status == 200 and headers.get("connection") == "close"
            assert r.closed()


@pytest.mark.parametrize("head, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nX: a\nb\r\n\r\n", 400),
    (b"POST /healthz HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400),
    (b"POST /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET /healthz HTTP/3.0\r\n\r\n", 505),
    (b"GET /\xff HTTP/1.1\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
], ids=["garbage", "no-colon", "bad-name", "bare-lf", "bad-length", "two-lengths",
        "http3", "non-ascii", "huge-head"])
def test_malformed_heads_get_a_clear_status_and_a_close(gw, head, status):
    with _connect(gw) as sock:
        r = Reader(sock)
        sock.sendall(head)
        got, headers, _ = r.response()
        assert got == status and headers["connection"] == "close"
        assert r.closed()


def test_chunked_bodies_and_expect_continue_go_to_hypercorn(gw, key):
    body = json.dumps({"model": "prism-mini", "messages": [
        {"role": "user", "content": "say: chunked"}]}).encode()
    with _connect(gw) as sock:
        r = Reader(sock)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                     + key.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        status, _, got = r.response()
        assert status == 200 and b"chunked" in got
    with _connect(gw) as sock:
        r = Reader(sock)
        head, _, rest = _chat(key, "say: continued", extra=b"Expect: 100-continue\r\n"
                              ).partition(b"\r\n\r\n")
        sock.sendall(head + b"\r\n\r\n")
        assert r.response()[0] == 100    # hypercorn's answer to the Expect header
        sock.sendall(rest)
        status, _, got = r.response()
        assert status == 200 and b"continued" in got


def test_an_oversized_body_is_refused_and_the_answer_arrives(gw, key):
    size = 12 * 1024 * 1024   # past max_body_bytes (10 MB)
    with _connect(gw) as sock:
        r = Reader(sock)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                     + key.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        sock.sendall(b" " * size)
        status, _, body = r.response()
        assert status == 413 and b"limit" in body
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")   # the body was read
        assert r.response()[0] == 200


def test_an_answer_before_the_body_keeps_the_connection_usable(gw):
    body = b'{"model": "prism-mini", "messages": []}'
    with _connect(gw) as sock:
        r = Reader(sock)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                     b"Authorization: Bearer sk-wrong\r\nContent-Length: %d\r\n\r\n" % len(body))
        time.sleep(0.1)
        sock.sendall(body)
        assert r.response()[0] == 401
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.response()[0] == 200


def test_connections_past_the_limit_are_closed(gw):
    # The limit is 6; the harness's admin client may hold one connection of its own.
    socks, served = [], 0
    try:
        for _ in range(8):
            s = _connect(gw)
            socks.append(s)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            r = Reader(s)
            if r.closed():
                break
            assert r.response()[0] == 200
            served += 1
        assert 5 <= served <= 6 and len(socks) == served + 1
    finally:
        for s in socks:
            s.close()
    time.sleep(0.2)
    assert httpx.get(gw.url + "/healthz").status_code == 200   # room again


def test_idle_connections_close_after_keep_alive(gw):
    with _connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        r = Reader(sock)
        assert r.response()[0] == 200
        started = time.monotonic()
        assert r.closed()
        assert 1.5 < time.monotonic() - started < 6


def test_the_plain_hypercorn_stack_still_serves(sim_url, tmp_path):
    gw = harness.start_gateway(tmp_path, sim_url, server={"fast_http1": False})
    try:
        key = gw.create_key(credits_usd=1.0)["key"]
        r = httpx.post(gw.url + "/v1/chat/completions", headers={
            "authorization": f"Bearer {key}"}, json={
            "model": "prism-mini", "messages": [{"role": "user", "content": "say: plain"}]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "plain"
    finally:
        gw.stop()


def test_stop_closes_idle_connections_at_once(sim_url, tmp_path):
    gw = harness.start_gateway(tmp_path, sim_url, server={"shutdown_grace": 10})
    sock = _connect(gw)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    r = Reader(sock)
    assert r.response()[0] == 200
    started = time.monotonic()
    gw.stop()   # an idle keep-alive connection must not hold the drain for its grace
    assert time.monotonic() - started < 5
    assert r.closed()
    sock.close()


def test_a_client_leaving_a_slow_answer_cuts_it_at_once(gw, key):
    """The reader sees the hang-up while the app waits on the upstream; the lean chat
    path's callback cancels the call, so its hold closes long before the upstream
    would have answered, and the log says the client left (499)."""
    import store
    from store.models import Hold, RequestLog
    with _connect(gw) as sock:
        sock.sendall(_chat(key, "[[sim delay_ms=4000]] say: too late"))
        time.sleep(0.5)
    started = time.monotonic()
    db = gw.db()
    try:
        while time.monotonic() - started < 3:
            if not store.open_holds(db):
                break
            time.sleep(0.05)
        assert not store.open_holds(db), "the hold outlived the client by 3 s"
        row = RequestLog.select().order_by(RequestLog.created_at.desc()).first()
        assert row.status == 499
        hold = Hold.get(Hold.request_id == row.request_id)
        assert hold.state == "voided"   # nothing reached the client: nothing billed
    finally:
        db.close()
