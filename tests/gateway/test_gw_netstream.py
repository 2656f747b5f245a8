"""gateway/providers/netstream.py: the upstream pool's network stream keeps httpcore's
contract (exceptions, timeouts) while sending a request's head and body in one send."""
from __future__ import annotations

import httpcore
import pytest
import trio
import trio.testing

from gateway.providers.netstream import LeanStream


class _Recorder(trio.abc.Stream):
    """A stream that records every send and answers reads from a script."""

    def __init__(self, answers: list[bytes]) -> None:
        self.sent: list[bytes] = []
        self.answers = answers
        self.broken = False

    async def send_all(self, data) -> None:
        await trio.lowlevel.checkpoint()
        if self.broken:
            raise trio.BrokenResourceError("peer reset")
        self.sent.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes=None) -> bytes:
        if not self.answers:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        return self.answers.pop(0)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_head_and_body_leave_in_one_send_before_the_read():
    raw = _Recorder([b"HTTP/1.1 200 OK\r\n\r\n"])
    s = LeanStream(raw)
    await s.write(b"POST / HTTP/1.1\r\n\r\n", timeout=5)
    await s.write(b"", timeout=5)
    await s.write(b'{"a":1}', timeout=5)
    assert raw.sent == []
    assert await s.read(65536, timeout=5) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert raw.sent == [b'POST / HTTP/1.1\r\n\r\n{"a":1}']


async def test_a_failed_send_is_reported_by_the_read_like_httpcore():
    raw = _Recorder([b""])
    raw.broken = True
    s = LeanStream(raw)
    await s.write(b"GET / HTTP/1.1\r\n\r\n")
    # The send error is swallowed as httpcore swallows WriteError; the read says the
    # connection is gone (b"" here), which httpcore turns into the retryable
    # "Server disconnected without sending a response".
    assert await s.read(100) == b""


async def test_read_timeout_and_broken_reads_map_to_httpcore_errors(autojump_clock):
    s = LeanStream(_Recorder([]))
    with pytest.raises(httpcore.ReadTimeout):
        await s.read(100, timeout=3)
    a, b = trio.testing.memory_stream_pair()
    s = LeanStream(a)
    await b.aclose()
    await s.write(b"x")
    with pytest.raises(httpcore.ReadError):
        await a.aclose()
        await s.read(100)


async def test_write_timeout(autojump_clock):
    a, _b = trio.testing.lockstep_stream_pair()   # nobody reads: the send blocks
    s = LeanStream(a)
    await s.write(b"x" * 10, timeout=2)
    with pytest.raises(httpcore.WriteTimeout):
        await s.read(100, timeout=60)
