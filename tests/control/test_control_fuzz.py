"""The live socket under hostile and slow clients.

Fuzz: random and truncated frames, each on its own connection; the only outcomes
allowed are answers to whatever valid requests were in it, then (if anything was
wrong) one Error frame, then a close. Afterwards a good client and the HTTP API still
work. Back-pressure: a subscriber that stops reading never slows requests, and when
it reads again every event is accounted for, delivered or counted in Dropped.
"""
from __future__ import annotations

import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import cbor2
import httpx
from hypothesis import HealthCheck, given, settings, strategies as st

import harness
from gateway.control import wire

_VALID = [wire.encode(m) for m in (
    wire.ListProviders(id=1), wire.ListWindows(id=2), wire.ListModels(id=3))]


def _truncated():
    return st.tuples(st.sampled_from(_VALID), st.integers(1, 40)).map(
        lambda t: t[0][:max(1, len(t[0]) - t[1])])


def _envelope():
    return st.dictionaries(st.sampled_from(["v", "type", "id", "provider_id", "enabled"]),
                           st.none() | st.integers(-5, 5) | st.text(max_size=6)
                           | st.sampled_from(["list_keys", "set_provider_flags", 1]),
                           max_size=4).map(
        lambda d: struct.pack(">I", len(p := cbor2.dumps(d))) + p)


hostile = st.lists(st.one_of(st.sampled_from(_VALID), _truncated(), _envelope(),
                             st.binary(min_size=1, max_size=32)),
                   min_size=1, max_size=5).map(b"".join)


def _exchange(path: str, payload: bytes) -> tuple[list[wire.Message], bytes]:
    """Send, half-close, read to the end; (frames received, undecodable tail)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    try:
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway may hang up before reading everything we meant to send
        dec, out = wire.FrameDecoder(), []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += dec.feed(data)
        return out, b"x" * dec.buffered
    finally:
        s.close()


def _expected_valid_prefix(payload: bytes) -> int:
    """How many whole valid frames the payload starts with."""
    dec, n = wire.FrameDecoder(), 0
    for i in range(len(payload)):
        try:
            n += len(dec.feed(payload[i:i + 1]))
        except Exception:  # noqa: BLE001 - any failure ends the valid prefix
            break
    return n


def test_fuzz_the_socket(tmp_path):
    gw = harness.start_gateway(tmp_path, None)
    try:
        key = gw.create_key()
        outcomes: dict[str, int] = {}

        @settings(max_examples=120, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(hostile)
        def one(payload: bytes) -> None:
            messages, tail = _exchange(gw.socket_path, payload)
            assert tail == b""  # the gateway only ever sends whole frames
            results = [m for m in messages if isinstance(m, wire.Result)]
            errors = [m for m in messages if isinstance(m, wire.Error)]
            assert len(results) + len(errors) == len(messages)
            # Per-request errors carry the request id; a connection error has none and
            # is the last thing said.
            fatal = [e for e in errors if e.id is None]
            assert len(fatal) <= 1 and (not fatal or messages[-1] is fatal[0])
            assert len(results) >= min(_expected_valid_prefix(payload), 1) or fatal
            kind = fatal[0].code if fatal else "clean"
            outcomes[kind] = outcomes.get(kind, 0) + 1

        one()
        assert set(outcomes) - {"clean"}, outcomes  # the fuzzer did reach the error paths

        # The gateway is unharmed: a well-behaved client and HTTP still work.
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(gw.socket_path)
        s.sendall(wire.encode(wire.ListProviders(id=7)))
        reply = wire.FrameDecoder().feed(s.recv(65536))
        s.close()
        assert isinstance(reply[0], wire.Result) and reply[0].id == 7
        r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                       json={"model": "prism-mini",
                             "messages": [{"role": "user", "content": "say: ok"}]},
                       headers={"authorization": f"Bearer {key['key']}"})
        assert r.status_code == 200
    finally:
        gw.stop()


def test_a_subscriber_that_stops_reading_never_slows_requests(tmp_path):
    requests = 400
    gw = harness.start_gateway(tmp_path, None, control={"event_buffer": 16})
    stuck = socket.socket(socket.AF_UNIX)
    stuck.settimeout(10)
    try:
        key = gw.create_key(credits_usd=50.0)
        stuck.connect(gw.socket_path)
        stuck.sendall(wire.encode(wire.Subscribe(id=1)))
        dec = wire.FrameDecoder()
        inbox = dec.feed(stuck.recv(65536))
        while not inbox:
            inbox = dec.feed(stuck.recv(65536))
        assert isinstance(inbox[0], wire.Result) and inbox[0].data["buffer"] == 16

        body = {"model": "prism-mini", "max_tokens": 5,
                "messages": [{"role": "user", "content": "say: ok"}]}
        headers = {"authorization": f"Bearer {key['key']}"}

        with httpx.Client(base_url=gw.url, timeout=30) as client:
            def one(_: int) -> tuple[int, float]:
                t0 = time.perf_counter()
                r = client.post("/v1/chat/completions", json=body, headers=headers)
                return r.status_code, time.perf_counter() - t0

            # The subscriber reads nothing while all of these run.
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(one, range(requests)))
            elapsed = time.perf_counter() - started

        assert [s for s, _ in results] == [200] * requests
        latencies = sorted(t for _, t in results)
        # Had the request path awaited the dashboard, requests would stall for good
        # once its buffers filled; the bound only guards against that, not for speed.
        assert latencies[-1] < 5.0, latencies[-5:]
        print(f"{requests} requests in {elapsed:.2f}s with a stuck subscriber, "
              f"p50 {latencies[len(latencies) // 2] * 1000:.1f}ms, "
              f"max {latencies[-1] * 1000:.1f}ms")

        # Resume reading: every event is delivered or counted, and the count comes.
        events, dropped = 0, 0
        while events + dropped < requests:
            for msg in dec.feed(stuck.recv(65536)):
                if isinstance(msg, wire.Event):
                    events += 1
                elif isinstance(msg, wire.Dropped):
                    dropped += msg.count
        assert events + dropped == requests
        assert dropped > 0 and events >= 16, (events, dropped)
    finally:
        stuck.close()
        gw.stop()
