"""Session codec: canonical messages survive JSON, and compaction cuts at turn starts."""
from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway import canonical as c
from gateway import errors
from gateway.routing import hints
from gateway.routing import session_codec as codec

import pytest

_text = st.text(max_size=40)
_image = st.one_of(st.builds(c.ImagePart, url=st.just("https://x/y.png"), detail=st.sampled_from([None, "low"])),
                   st.builds(c.ImagePart, data_b64=st.just("aGk="), media_type=st.just("image/png")))
_call = st.builds(c.ToolCallPart, id=st.text(min_size=1, max_size=8), name=st.text(min_size=1, max_size=8),
                  arguments=st.just('{"a": 1}'))
_result = st.builds(c.ToolResultPart, tool_call_id=st.text(max_size=8),
                    content=st.lists(st.one_of(st.builds(c.TextPart, _text), _image), max_size=2).map(tuple),
                    is_error=st.booleans())
_messages = st.one_of(
    st.builds(c.Message, st.just("system"), st.lists(st.builds(c.TextPart, _text), max_size=2).map(tuple)),
    st.builds(c.Message, st.just("user"),
              st.lists(st.one_of(st.builds(c.TextPart, _text), _image, _result), max_size=3).map(tuple),
              st.one_of(st.none(), st.just("ann"))),
    st.builds(c.Message, st.just("assistant"),
              st.lists(st.one_of(st.builds(c.TextPart, _text), _call,
                                 st.builds(c.ThinkingPart, _text, st.one_of(st.none(), st.just("sig")))),
                       max_size=3).map(tuple)),
    st.builds(c.Message, st.just("tool"), st.lists(_result, min_size=1, max_size=1).map(tuple)),
)


@given(_messages)
def test_every_message_round_trips_through_json(m):
    stored = json.dumps(codec.encode_message(m))
    assert codec.decode_message(json.loads(stored)) == m


def test_malformed_rows_raise_value_errors():
    with pytest.raises(ValueError):
        codec.decode_message({"role": "user", "parts": [{"type": "video"}]})
    with pytest.raises(ValueError):
        codec.decode_message({"role": "system", "parts": [{"type": "tool_call", "id": "a", "name": "b",
                                                           "arguments": "{}"}]})


def _u(t):
    return c.Message("user", (c.TextPart(t),))


def _a(t):
    return c.Message("assistant", (c.TextPart(t),))


def test_cut_starts_at_a_user_turn_and_keeps_at_most_keep():
    msgs = [_u("q1"), _a("a1"), _u("q2"),
            c.Message("assistant", (c.ToolCallPart("call1", "f"),)),
            c.Message("tool", (c.ToolResultPart("call1", (c.TextPart("42"),)),)),
            _a("a2"), _u("q3"), _a("a3")]
    cut = codec.compaction_cut(msgs, keep=4)          # len-4 lands on the tool result
    assert msgs[cut] == _u("q3") and len(msgs) - cut <= 4
    assert codec.compaction_cut(msgs, keep=100) == 0
    assert codec.compaction_cut([_a("x"), _a("y")], keep=1) == 2   # no turn start: condense all


def test_extractive_summary_keeps_the_gist_and_is_bounded():
    msgs = [_u("My name is Ravi and I live in Pune."), _a("Nice to meet you, Ravi."),
            c.Message("assistant", (c.ToolCallPart("c1", "lookup_weather"),))]
    s = codec.extractive_summary("Earlier: talked about cricket.", msgs)
    assert "Ravi" in s and "Pune" in s and "cricket" in s and "[called lookup_weather]" in s
    long = [_u("word " * 500)] * 200
    assert len(codec.extractive_summary(None, long)) <= codec.SUMMARY_CHARS


def _headers(**h):
    low = {k.lower(): v for k, v in h.items()}
    return lambda name: low.get(name.lower())


def test_hints_from_headers():
    h = hints.from_headers(_headers(**{"X-Prism-Mode": " Sport ", "X-Prism-Model-Prefer": "mini",
                                       "X-Prism-Session": "chat-42"}))
    assert h == hints.RoutingHints("sport", "mini", "chat-42")
    assert hints.from_headers(_headers()) is hints.NO_HINTS
    for bad in ({"X-Prism-Mode": "fast"}, {"X-Prism-Session": "has space"},
                {"X-Prism-Session": "x" * 129}, {"X-Prism-Model-Prefer": "m" * 201}):
        with pytest.raises(errors.InvalidRequest):
            hints.from_headers(_headers(**bad))
