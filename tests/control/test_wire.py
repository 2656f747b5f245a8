"""control/wire.py: every message round-trips, framing is chunking-blind, bad input
is a WireError with a code that says which kind."""
from __future__ import annotations

import struct

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.control import wire
from gateway.errors import WireError

SAMPLES: list[wire.Message] = [
    wire.Subscribe(id=1),
    wire.Unsubscribe(id=2),
    wire.ListProviders(id=3),
    wire.ListModels(id=4),
    wire.ListAccounts(id=5),
    wire.ListOrgs(id=55),
    wire.ListKeys(id=6),
    wire.ListKeys(id=7, account_id="acct_1"),
    wire.ListHolds(id=8, account_id="acct_1"),
    wire.ListWindows(id=9),
    wire.SetProviderFlags(id=10, provider_id="sim", images=True),
    wire.SetProviderFlags(id=11, provider_id="sim", enabled=False, images=False, video=True),
    wire.AdjustWallet(id=12, account_id="acct_1", amount_micros=-1_500_000, reason="refund"),
    wire.CreateKey(id=13, name="ci", credits_micros=5_000_000),
    wire.CreateKey(id=14, name="second", account_id="acct_1"),
    wire.RevokeKey(id=15, key_id="key_1"),
    wire.RotationStep(id=19, provider_id="openai", step="promote"),
    wire.Result(id=16, data={"items": [{"id": "a", "n": 1, "x": 1.5, "ok": True,
                                        "none": None, "raw": b"\x00"}], "truncated": False}),
    wire.Result(id=17),
    wire.Error(id=18, code="not_found", message="No key"),
    wire.Error(code="bad_frame", message="not CBOR"),
    wire.Event(record={"request_id": "req_1", "status": 200, "latency_ms": 1.5,
                       "error_type": None, "stream": False}),
    wire.Dropped(count=3),
    wire.ListJobs(id=19),
    wire.ListJobs(id=20, account_id="acct_1"),
    wire.CancelJob(id=21, job_id="batch_1"),
]


def test_every_message_type_has_a_sample():
    assert {type(m) for m in SAMPLES} == set(wire.TYPES.values())


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: f"{m.TYPE}")
def test_round_trip(msg):
    frame = wire.encode(msg)
    (size,) = struct.unpack(">I", frame[:4])
    assert size == len(frame) - 4
    assert wire.FrameDecoder().feed(frame) == [msg]
    envelope = cbor2.loads(frame[4:])
    assert envelope["v"] == wire.VERSION and envelope["type"] == msg.TYPE


def test_byte_at_a_time_equals_whole():
    stream = b"".join(wire.encode(m) for m in SAMPLES)
    whole = wire.FrameDecoder().feed(stream)
    dec = wire.FrameDecoder()
    pieces: list[wire.Message] = []
    for i in range(len(stream)):
        pieces += dec.feed(stream[i:i + 1])
    assert pieces == whole == SAMPLES
    assert dec.buffered == 0
    dec.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=30))
def test_any_chunking_decodes_the_same(cuts):
    stream = b"".join(wire.encode(m) for m in SAMPLES)
    points = sorted({min(sum(cuts[:i + 1]) * 7, len(stream)) for i in range(len(cuts))})
    dec, out, last = wire.FrameDecoder(), [], 0
    for p in points + [len(stream)]:
        out += dec.feed(stream[last:p])
        last = p
    assert out == SAMPLES


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def _frame(obj) -> bytes:
    payload = cbor2.dumps(obj)
    return struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize("data, code", [
    (_frame([1, 2]), "bad_frame"),
    (struct.pack(">I", 3) + b"\xff\xff\xff", "bad_frame"),
    (struct.pack(">I", 0), "bad_frame"),
    (struct.pack(">I", wire.MAX_FRAME + 1), "frame_too_large"),
    (_frame({"v": 2, "type": "subscribe", "id": 1}), "unsupported_version"),
    (_frame({"v": True, "type": "subscribe", "id": 1}), "unsupported_version"),
    (_frame({"v": 1, "type": "reboot", "id": 1}), "unknown_type"),
    (_frame({"v": 1, "type": "subscribe"}), "bad_message"),
    (_frame({"v": 1, "type": "subscribe", "id": -1}), "bad_message"),
    (_frame({"v": 1, "type": "subscribe", "id": True}), "bad_message"),
    (_frame({"v": 1, "type": "subscribe", "id": 1, "extra": 1}), "bad_message"),
    (_frame({"v": 1, "type": "adjust_wallet", "id": 1, "account_id": "a",
             "amount_micros": 0, "reason": "x"}), "bad_message"),
    (_frame({"v": 1, "type": "adjust_wallet", "id": 1, "account_id": "a",
             "amount_micros": 1.5, "reason": "x"}), "bad_message"),
    (_frame({"v": 1, "type": "adjust_wallet", "id": 1, "account_id": "a",
             "amount_micros": 5, "reason": "  "}), "bad_message"),
    (_frame({"v": 1, "type": "set_provider_flags", "id": 1, "provider_id": "p"}), "bad_message"),
    (_frame({"v": 1, "type": "set_provider_flags", "id": 1, "provider_id": "p",
             "images": 1}), "bad_message"),
    (_frame({"v": 1, "type": "create_key", "id": 1, "name": "n", "credits_micros": 5,
             "account_id": "a"}), "bad_message"),
    (_frame({"v": 1, "type": "event", "record": {"t": cbor2.CBORTag(99, 1)}}), "bad_message"),
    (_frame({"v": 1, "type": "event", "record": {1: 2}}), "bad_message"),
    (_frame({"v": 1, "type": "dropped", "count": 0}), "bad_message"),
    (_frame({"v": 1, "type": "result", "id": 1, "data": _nested(wire.MAX_DEPTH + 1)}),
     "bad_message"),
    (_frame({"v": 1, "type": "result", "id": 1, "data": _nested(wire.MAX_DEPTH + 2)}),
     "bad_frame"),
])
def test_bad_frames_are_wire_errors(data, code):
    dec = wire.FrameDecoder()
    with pytest.raises(WireError) as info:
        dec.feed(data)
    assert info.value.code == code
    assert info.value.status == 400 and info.value.type_name == "protocol_error"
    # The stream is out of step now: the decoder refuses everything after.
    with pytest.raises(WireError):
        dec.feed(wire.encode(wire.Subscribe(id=1)))


def test_trailing_bytes_inside_a_frame_are_refused():
    payload = cbor2.dumps({"v": 1, "type": "subscribe", "id": 1}) + b"\x00"
    with pytest.raises(WireError) as info:
        wire.FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)
    assert info.value.code == "bad_frame"


def test_oversize_is_refused_before_the_payload_arrives():
    dec = wire.FrameDecoder(max_frame=100)
    with pytest.raises(WireError) as info:
        dec.feed(struct.pack(">I", 101))
    assert info.value.code == "frame_too_large"


def test_truncated_frame_at_close():
    frame = wire.encode(wire.Subscribe(id=1))
    dec = wire.FrameDecoder()
    assert dec.feed(frame[:-1]) == []
    with pytest.raises(WireError) as info:
        dec.close()
    assert info.value.code == "truncated_frame"


def test_encoding_refuses_an_oversized_message():
    with pytest.raises(WireError) as info:
        wire.encode(wire.Result(id=1, data="x" * (wire.MAX_FRAME + 1)))
    assert info.value.code == "frame_too_large"


def test_messages_check_themselves():
    with pytest.raises(WireError):
        wire.AdjustWallet(id=1, account_id="", amount_micros=5, reason="r")
    with pytest.raises(WireError):
        wire.Result(id=1, data={"when": object()})
    with pytest.raises(WireError):
        wire.Error(id=None, code="", message="m")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_messages_or_wire_errors(data):
    dec = wire.FrameDecoder(max_frame=1000)
    try:
        out = dec.feed(data)
    except WireError:
        return
    assert all(isinstance(m, wire.Message) for m in out)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.text(max_size=10)
    | st.floats(allow_nan=False) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "type", "id", "data", "record", "count", "code",
                                        "message", "provider_id", "images", "reason",
                                        "amount_micros", "account_id", "name", "x"]),
                       _values | st.sampled_from([1, "subscribe", "result", "event",
                                                  "adjust_wallet", "set_provider_flags"]),
                       max_size=6))
def test_random_envelopes_are_messages_or_wire_errors(envelope):
    try:
        msg = wire.from_wire(envelope)
    except WireError:
        return
    assert wire.FrameDecoder().feed(wire.encode(msg)) == [msg]


def test_wire_and_the_dashboard_stay_pure():
    """wire.py is shared with the asyncio dashboard: no trio, httpx, quart or peewee, and
    the dashboard never reaches for the store."""
    import subprocess
    import sys
    code = ("import sys, gateway.control.wire, tui.app; "
            "print(sorted(m for m in ('trio', 'httpx', 'quart', 'peewee', 'store') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
