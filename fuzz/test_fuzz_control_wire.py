"""Fuzz the control-socket FrameDecoder: any bytes, any split, only messages or our
WireError, and the same answer however the bytes were chunked."""
from __future__ import annotations

import struct

import cbor2
from hypothesis import given, settings, strategies as st

from gateway.control import wire
from gateway.errors import WireError

_GOOD = [wire.encode(m) for m in (
    wire.Subscribe(id=1), wire.ListKeys(id=2, account_id="acct_x"),
    wire.AdjustWallet(id=3, account_id="a", amount_micros=-5, reason="r"),
    wire.Event(record={"status": 200}), wire.Dropped(count=2))]


def _envelopes():
    keys = st.sampled_from(["v", "type", "id", "data", "record", "count", "code", "message",
                            "provider_id", "enabled", "amount_micros", "reason", "name"])
    values = (st.none() | st.booleans() | st.integers(-2 ** 64, 2 ** 64) | st.text(max_size=8)
              | st.sampled_from([1, "subscribe", "result", "adjust_wallet", "event"]))
    return st.dictionaries(keys, values, max_size=6).map(
        lambda d: struct.pack(">I", len(p := cbor2.dumps(d))) + p)


# Valid frames, CBOR envelopes of random shape, raw noise and lying length prefixes.
frames = st.lists(st.one_of(
    st.sampled_from(_GOOD), _envelopes(), st.binary(max_size=24),
    st.integers(0, 2 ** 32 - 1).map(lambda n: struct.pack(">I", n)),
), max_size=8).map(b"".join)


def run(pieces: list[bytes], cap: int):
    dec = wire.FrameDecoder(max_frame=cap)
    out: list[wire.Message] = []
    try:
        for p in pieces:
            out += dec.feed(p)
        dec.close()
    except WireError as exc:
        assert exc.code in {"bad_frame", "frame_too_large", "unsupported_version",
                            "unknown_type", "bad_message", "truncated_frame"}
        return ("error", exc.code, out)
    for msg in out:
        assert wire.FrameDecoder().feed(wire.encode(msg)) == [msg]
    return ("ok", out)


@settings(max_examples=400, deadline=None)
@given(raw=frames, cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
       cap=st.sampled_from([64, wire.MAX_FRAME]))
def test_frame_decoder_survives_anything(raw, cuts, cap):
    points = sorted({0, len(raw), *(min(c, len(raw)) for c in cuts)})
    whole = run([raw], cap)
    chunked = run([raw[a:b] for a, b in zip(points, points[1:])], cap)
    # Chunking may only change how many good messages came out before the error.
    assert chunked[:2] == whole[:2]
