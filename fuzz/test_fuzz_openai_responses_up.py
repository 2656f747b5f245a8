"""Fuzz the Responses API upstream decoders (codecs/openai_responses_up) with real
answers, answers with fields swapped for garbage, and garbage.

Allowed outcomes: a canonical Response (or stream events) or our own UpstreamError
(protocol errors included). Event sequences that decode must be well formed: one
StreamStart first, tool-call deltas only after their start.
"""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway import canonical as c
from gateway.codecs import openai_responses, openai_responses_up as up
from gateway.codecs.openai_responses_stream import StreamEncoder
from gateway.errors import UpstreamError

FUZZ = settings(max_examples=300, deadline=None)

keys = st.sampled_from(["type", "text", "content", "status", "output", "usage", "delta",
                        "item", "call_id", "name", "arguments", "output_index", "response",
                        "summary", "input_tokens", "output_tokens", "incomplete_details",
                        "error", "message"]) | st.text(max_size=6)
leaves = (st.none() | st.booleans() | st.integers(-3, 1 << 64) | st.floats(allow_nan=False)
          | st.text(max_size=10) | st.sampled_from([
              "message", "function_call", "reasoning", "output_text", "completed",
              "incomplete", "failed", "response.output_text.delta", "response.completed",
              "response.output_item.added", "response.function_call_arguments.delta"]))
garbage = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(keys, inner, max_size=4), max_leaves=16)

text = st.text(max_size=8)
parts = st.lists(st.one_of(
    text.map(c.TextPart),
    st.builds(c.ToolCallPart, st.text(min_size=1, max_size=5), st.text(min_size=1, max_size=5),
              st.just('{"a":1}')),
    st.text(min_size=1, max_size=8).map(c.ThinkingPart)), max_size=4)
responses = st.builds(
    lambda ps, finish, usage: c.Response("resp_1", "m", c.Message("assistant", tuple(ps)),
                                         finish, usage, 7),
    parts, st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    st.none() | st.builds(c.Usage, st.integers(0, 99), st.integers(0, 99)))
ECHO = openai_responses.request_echo({})


def _body(resp: c.Response) -> dict:
    return openai_responses.from_canonical_response(resp, model="m", response_id="resp_1",
                                                    created_at=7, request_echo=ECHO)


def _events(resp: c.Response) -> list[dict]:
    enc = StreamEncoder("resp_1", "m", 7, ECHO)
    return [e for ev in c.response_events(resp) for e in enc.encode(ev)] + enc.finish()


def _spoil(d: object, key: str, value: object) -> object:
    return {**d, key: value} if isinstance(d, dict) else d


def _spoil_inside(d: dict, field: str, key: str, value: object) -> dict:
    """``d`` with one key of its ``field`` (an object, or a list's first object) spoilt."""
    inner = d.get(field)
    if isinstance(inner, list) and inner:
        return {**d, field: [_spoil(inner[0], key, value), *inner[1:]]}
    return {**d, field: _spoil(inner, key, value)}


@FUZZ
@given(st.one_of(responses.map(_body),
                 st.tuples(responses.map(_body), keys, garbage).map(lambda t: _spoil(*t)),
                 st.tuples(responses.map(_body), st.sampled_from(["output", "usage",
                                                                  "incomplete_details"]),
                           keys, garbage).map(lambda t: _spoil_inside(*t)),
                 garbage))
def test_fuzz_to_canonical_response(raw):
    try:
        resp = up.to_canonical_response(raw)
    except UpstreamError:
        return
    assert isinstance(resp, c.Response)


@FUZZ
@given(st.one_of(responses.map(_events),
                 st.tuples(responses.map(_events), st.integers(0, 40), keys, garbage).map(
                     lambda t: [(_spoil(e, t[2], t[3]) if i == t[1] else e)
                                for i, e in enumerate(t[0])]),
                 st.tuples(responses.map(_events), st.integers(0, 40),
                           st.sampled_from(["item", "response"]), keys, garbage).map(
                     lambda t: [(_spoil_inside(e, t[2], t[3], t[4]) if i == t[1] else e)
                                for i, e in enumerate(t[0])]),
                 st.lists(garbage, max_size=8)))
def test_fuzz_stream_decoder(events):
    d = up.StreamDecoder()
    out: list = []
    try:
        for e in events:
            out += d.feed(e)
        out += d.close()
    except UpstreamError:
        return
    if out:
        assert isinstance(out[0], c.StreamStart)
        assert sum(isinstance(ev, c.StreamStart) for ev in out) == 1
    started: set[int] = set()
    for ev in out:
        if isinstance(ev, c.ToolCallStart):
            started.add(ev.index)
        elif isinstance(ev, c.ToolCallDelta):
            assert ev.index in started
