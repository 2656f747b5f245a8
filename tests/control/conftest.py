"""A blocking control-socket client for tests, and gateways that have one."""
from __future__ import annotations

import socket
import time

import pytest

import harness
from gateway.control import wire


class SyncControl:
    """One control connection driven from a test thread with plain sockets."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.decoder = wire.FrameDecoder()
        self.inbox: list[wire.Message] = []
        self._ids = 0

    def send(self, msg: wire.Message) -> None:
        self.sock.sendall(wire.encode(msg))

    def read_some(self) -> list[wire.Message]:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return self.decoder.feed(data)

    def next(self, kind: type | None = None) -> wire.Message:
        """The next message (of `kind`, keeping others in the inbox)."""
        while True:
            for i, msg in enumerate(self.inbox):
                if kind is None or isinstance(msg, kind):
                    return self.inbox.pop(i)
            self.inbox += self.read_some()

    def call(self, kind: type[wire.Request], **fields):
        self._ids += 1
        self.send(kind(id=self._ids, **fields))
        while True:
            for i, msg in enumerate(self.inbox):
                if isinstance(msg, (wire.Result, wire.Error)) and msg.id == self._ids:
                    self.inbox.pop(i)
                    return msg
            self.inbox += self.read_some()

    def ok(self, kind: type[wire.Request], **fields):
        reply = self.call(kind, **fields)
        assert isinstance(reply, wire.Result), reply
        return reply.data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def connect():
    opened: list[SyncControl] = []

    def factory(path: str, **kw) -> SyncControl:
        c = SyncControl(path, **kw)
        opened.append(c)
        return c
    yield factory
    for c in opened:
        c.close()


@pytest.fixture(scope="module")
def control_gateway(tmp_path_factory):
    """An in-process-simulator gateway shared by a module's socket tests."""
    gw = harness.start_gateway(tmp_path_factory.mktemp("ctl"), None)
    yield gw
    gw.stop()


def _wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def wait_for():
    return _wait_for
