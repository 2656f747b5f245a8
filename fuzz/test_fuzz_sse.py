"""Fuzz the SSE framer: any bytes, any split, only events or our upstream error."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway.codecs.sse import SSEDecoder, SSEEvent
from gateway.errors import UpstreamError

# Bytes biased towards the ones the parser branches on, mixed with noise.
sse_bytes = st.lists(st.one_of(
    st.binary(max_size=16),
    st.sampled_from([b"data:", b"data: ", b"event:", b"id:", b"retry:", b":", b" ", b"\x00",
                     b"\r", b"\n", b"\r\n", b"\xef\xbb\xbf", b"\xef", b"\xbb", b"\xf0\x9f", b"\xff"]),
), max_size=60).map(b"".join)


def run(pieces: list[bytes], cap: int) -> list[SSEEvent] | str:
    d = SSEDecoder(max_event_bytes=cap)
    out: list[SSEEvent] = []
    try:
        for p in pieces:
            out += d.feed(p)
        out += d.close()
    except UpstreamError:
        return "upstream error"
    for ev in out:
        assert isinstance(ev, SSEEvent) and isinstance(ev.data, str)
        assert ev.event is None or (ev.event and "\n" not in ev.event and "\r" not in ev.event)
        assert ev.retry is None or ev.retry >= 0
    return out


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | sse_bytes,
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=20),
       cap=st.sampled_from([8, 64, 1_048_576]))
def test_sse_decoder_survives_anything(raw, cuts, cap):
    points = sorted({0, len(raw), *(min(c, len(raw)) for c in cuts)})
    whole = run([raw], cap)
    assert run([raw[a:b] for a, b in zip(points, points[1:])], cap) == whole
