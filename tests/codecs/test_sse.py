"""SSE framer: WHATWG parsing rules, split invariance, the size cap, and encoding."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from gateway.codecs.sse import SSEDecoder, SSEEvent, encode_event
from gateway.errors import UpstreamProtocolError


def decode_whole(raw: bytes, **kw) -> list[SSEEvent]:
    d = SSEDecoder(**kw)
    return d.feed(raw) + d.close()


def decode_pieces(pieces: list[bytes], **kw) -> list[SSEEvent]:
    d = SSEDecoder(**kw)
    out: list[SSEEvent] = []
    for p in pieces:
        out += d.feed(p)
    return out + d.close()


def split_at(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    return [raw[a:b] for a, b in zip(points, points[1:])]


def test_openai_style_stream():
    raw = b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    assert [e.data for e in decode_whole(raw)] == ['{"a":1}', '{"b":2}', "[DONE]"]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol):
    raw = eol.join([b"event: ping", b"data: one", b"data: two", b"", b"data: three", b"", b""])
    assert decode_whole(raw) == [SSEEvent("one\ntwo", "ping"), SSEEvent("three")]


def test_crlf_split_between_feeds_is_one_line_break():
    # If the \n were taken as a second line break it would dispatch an extra empty line.
    assert decode_pieces([b"data: a\r", b"\ndata: b\r", b"\n\r\n"]) == [SSEEvent("a\nb")]


def test_comments_and_field_forms():
    raw = (b": keep-alive\n"
           b"data:no space\n"
           b"data:  two spaces\n"
           b"data\n"
           b"unknown: x\n"
           b"\n")
    assert decode_whole(raw) == [SSEEvent("no space\n two spaces\n")]


def test_event_with_only_comments_or_fields_is_not_dispatched():
    assert decode_whole(b": hi\n\nevent: x\n\nretry: 10\n\n") == []


def test_empty_data_line_dispatches_empty_event():
    assert decode_whole(b"data:\n\n") == [SSEEvent("")]


def test_id_persists_and_retry_is_reported():
    d = SSEDecoder()
    events = d.feed(b"id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid\ndata: c\n\nretry: x1\n\n")
    assert events == [SSEEvent("a", id="7", retry=1500), SSEEvent("b", id="7"), SSEEvent("c", id="")]
    assert d.retry == 1500 and d.last_event_id == ""


def test_id_with_nul_is_ignored():
    assert decode_whole(b"id: 1\n\nid: a\x00b\ndata: x\n\n") == [SSEEvent("x", id="1")]


def test_bom_stripped_only_at_start_even_when_split():
    raw = b"\xef\xbb\xbfdata: \xef\xbb\xbfx\n\n"
    expected = [SSEEvent("\ufeffx")]
    assert decode_whole(raw) == expected
    assert decode_pieces([raw[:1], raw[1:2], raw[2:]]) == expected


def test_multibyte_utf8_split_across_feeds():
    raw = "data: héllo €𝄞\n\n".encode()
    assert decode_pieces([raw[i:i + 1] for i in range(len(raw))]) == [SSEEvent("héllo €𝄞")]


def test_invalid_utf8_is_replaced_not_raised():
    assert decode_whole(b"data: \xff\xfe\n\n") == [SSEEvent("\ufffd\ufffd")]


def test_close_flushes_pending_event_with_data():
    assert decode_whole(b"data: [DONE]\n") == [SSEEvent("[DONE]")]
    assert decode_whole(b"data: [DONE]") == [SSEEvent("[DONE]")]
    assert decode_whole(b"event: x\n") == []


def test_close_is_idempotent_and_feed_after_close_is_a_bug():
    d = SSEDecoder()
    d.feed(b"data: x")
    assert d.close() == [SSEEvent("x")]
    assert d.close() == []
    with pytest.raises(RuntimeError):
        d.feed(b"data: y\n\n")


def test_overlong_line_raises_even_without_newline():
    d = SSEDecoder(max_event_bytes=100)
    with pytest.raises(UpstreamProtocolError):
        for _ in range(20):
            d.feed(b"data: " + b"x" * 10)


def test_overlong_event_from_many_short_lines_raises():
    with pytest.raises(UpstreamProtocolError):
        decode_whole(b"data: xxxxxxxx\n" * 20, max_event_bytes=100)


def test_many_small_events_under_the_cap_are_fine():
    assert len(decode_whole(b"data: xxxxxxxx\n\n" * 100, max_event_bytes=20)) == 100


def test_encode_event():
    assert encode_event('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_event("a\nb\r\nc", "delta") == b"event: delta\ndata: a\ndata: b\ndata: c\n\n"
    with pytest.raises(ValueError):
        encode_event("x", "bad\nname")


sse_fragments = st.lists(st.one_of(
    st.sampled_from([b"data: ", b"data:", b"event: e", b"id: 1", b"retry: 30", b": c",
                     b"\n", b"\r", b"\r\n", b"\xef\xbb\xbf", "€".encode(), "𝄞".encode()]),
    st.binary(max_size=8),
), max_size=40).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(raw=sse_fragments, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_split_invariance(raw, cuts):
    def run(pieces):
        try:
            return decode_pieces(pieces, max_event_bytes=64)
        except UpstreamProtocolError:
            return "too large"
    whole = run([raw])
    assert run(split_at(raw, cuts)) == whole
    assert run([raw[i:i + 1] for i in range(len(raw))]) == whole


names = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                min_size=1, max_size=10)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=40), st.none() | names), max_size=5),
       st.lists(st.integers(min_value=0), max_size=6))
def test_encode_decode_round_trip(events, cuts):
    raw = b"".join(encode_event(d, e) for d, e in events)
    normalised = [SSEEvent(d.replace("\r\n", "\n").replace("\r", "\n"), e) for d, e in events]
    assert decode_pieces(split_at(raw, cuts)) == normalised


def test_absurd_retry_is_ignored_not_crashing():
    assert decode_whole(b"retry: " + b"9" * 5000 + b"\ndata: x\n\n") == [SSEEvent("x")]
