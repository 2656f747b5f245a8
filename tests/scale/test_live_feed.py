"""The dashboard of one process shows the requests every process serves (gateway.shared
.feed): two `prism serve` processes on one PostgreSQL store, over Redis pub/sub and over
PostgreSQL LISTEN/NOTIFY; a dashboard attached to the first sees a request the second
served, tagged with the second's node, and the records stop when nobody watches."""
from __future__ import annotations

import socket
import time

import httpx
import pytest

import pgtest
from gateway.control import wire
from gateway.shared import feed
from nodes import Node, write_config

BODY = {"model": "prism-mini", "max_tokens": 5,
        "messages": [{"role": "user", "content": "say: hi"}]}


@pytest.fixture(scope="module", params=["redis", "postgresql"])
def pair(request, pg_store, sim_url, tmp_path_factory):
    cache = {"url": pgtest.REDIS, "prefix": pgtest.redis_prefix()} \
        if request.param == "redis" else {}
    configs = [write_config(tmp_path_factory.mktemp("feed"), sim_url, pg_store, cache=cache)
               for _ in range(2)]
    nodes = [Node(c) for c in configs]
    yield nodes, [c.parent / "prism.sock" for c in configs]
    for node in nodes:
        node.stop()


class Dashboard:
    def __init__(self, path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(0.5)
        self.sock.connect(str(path))
        self.decoder = wire.FrameDecoder()
        self.events: list[dict] = []
        self.sock.sendall(wire.encode(wire.Subscribe(id=1)))
        self.replies: list = []

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise EOFError
            for m in self.decoder.feed(data):
                if isinstance(m, wire.Event):
                    self.events.append(m.record)
                else:
                    self.replies.append(m)

    def wait_for(self, request_id: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.events:
                if record.get("request_id") == request_id:
                    return record
            self.pump(0.2)
        raise AssertionError(f"{request_id} never reached the dashboard: {self.events[-5:]}")

    def close(self) -> None:
        self.sock.close()


def _served(node: Node, key: str) -> str:
    r = httpx.post(node.url + "/v1/chat/completions", json=BODY, timeout=30,
                   headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


def test_a_dashboard_on_one_process_sees_the_other_processes_requests(pair):
    (first, second), sockets = pair
    key = first.create_key(credits_usd=1.0, name="feed")["key"]
    dash = Dashboard(sockets[0])
    try:
        # The second process learns from the heartbeats that someone watches (one beat).
        deadline = time.monotonic() + 15
        while True:
            rid = _served(second, key)
            try:
                record = dash.wait_for(rid, timeout=1.0)
                break
            except AssertionError:
                assert time.monotonic() < deadline, "the other process never sent its records"
        assert record["node"].startswith("node_") and f"_{second.proc.pid}_" in record["node"]
        assert record["status"] == 200 and record["model"] == "prism-mini"
        assert [type(m) for m in dash.replies] == [wire.Result]     # subscribed
        # This process's own requests arrive once, untagged.
        own = _served(first, key)
        mine = dash.wait_for(own)
        assert "node" not in mine
        assert sum(r.get("request_id") == own for r in dash.events) == 1
        # Once watching, every remote request arrives, in order of arrival, once each.
        rids = [_served(second, key) for _ in range(5)]
        for rid in rids:
            dash.wait_for(rid)
        seen = [r["request_id"] for r in dash.events if r.get("request_id") in rids]
        assert seen == rids
    finally:
        dash.close()
    # Nobody watches any more: after a beat, the second process stops sending.
    deadline = time.monotonic() + 15
    while _feed(second)["watched"]:
        assert time.monotonic() < deadline, "still sending with no dashboard attached"
        time.sleep(0.5)
    # The figures travel in heartbeats: let one more pass so `sent` is current, not the
    # snapshot from before the dashboard's requests.
    time.sleep(2.5)
    sent = _feed(second)["sent"]
    for _ in range(3):
        _served(second, key)
    time.sleep(2.5)     # a heartbeat later, with whatever it would have sent
    assert _feed(second)["sent"] == sent


def _feed(node: Node) -> dict:
    nodes = node.admin.get("/-/cluster").json()["nodes"]
    mine = next(n for n in nodes if f"_{node.proc.pid}_" in n["id"])
    return mine["feed"]


def test_pack_splits_under_the_limit_and_unpacks():
    records = [{"request_id": f"req_{i}", "detail": "x" * 300} for i in range(100)]
    payloads = feed.pack("node_a", records, feed.PG_PAYLOAD_BYTES)
    assert len(payloads) > 1 and all(len(p) <= feed.PG_PAYLOAD_BYTES for p in payloads)
    back = [r for p in payloads for r in feed.unpack(p)[1]]
    assert back == records
    assert {feed.unpack(p)[0] for p in payloads} == {"node_a"}
    # A record that cannot fit is left out rather than breaking NOTIFY.
    assert feed.pack("node_a", [{"big": "y" * 10_000}], feed.PG_PAYLOAD_BYTES) == []
    with pytest.raises(ValueError):
        feed.unpack(b'{"something": "else"}')
