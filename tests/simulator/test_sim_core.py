"""Pure tests of the simulator core: replies, tools, JSON mode, usage, streams."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import canonical as c
from gateway import tokenizer
from gateway.simulator import core
from gateway.simulator.core import Fault, SimOptions


def user(text: str) -> c.Message:
    return c.Message("user", (c.TextPart(text),))


def req(text: str, **kw) -> c.Request:
    return c.Request(model="sim-small", messages=(user(text),), **kw)


WEATHER = c.Tool("get_weather", parameters={
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "ratio": {"type": "number"},
        "metric": {"type": "boolean"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city"],
})
TIME = c.Tool("get_time", parameters={"type": "object", "properties": {"tz": {"type": "string"}}})


# ---------------------------------------------------------------- text replies

def test_echo_rule_collapses_whitespace_and_is_deterministic():
    r = req("Hello\n\n   world\t!")
    assert core.reply_text(r) == "Simulated reply to: Hello world !"
    assert core.respond(r) == core.respond(r)
    assert core.respond(r).id.startswith("chatcmpl-sim-")
    assert core.respond(r).id != core.respond(req("other")).id


def test_say_takes_rest_of_line_exactly():
    assert core.reply_text(req("Please say: Bonjour, le monde!\nignored")) == "Bonjour, le monde!"
    assert core.reply_text(req("SAY:   spaced out  ")) == "spaced out"


def test_system_message_changes_nothing_and_last_user_message_counts():
    plain = req("say: A")
    with_system = c.Request("sim-small", (c.Message("system", (c.TextPart("be brief"),)),
                                          user("say: ignored"),
                                          c.Message("assistant", (c.TextPart("ok"),)),
                                          user("say: A")))
    assert core.reply_text(with_system) == core.reply_text(plain) == "A"


def test_directive_is_removed_from_the_reply():
    assert core.reply_text(req("hi [[sim status=200 chunk_chars=3]] there")) == \
        "Simulated reply to: hi there"
    assert core.reply_text(req("say: yes [[sim delay_ms=1]]")) == "yes"


def test_max_tokens_truncates_by_words_and_finishes_length():
    r = req("say: one two three four five six seven eight nine ten", max_tokens=3)
    resp = core.respond(r)
    assert resp.finish_reason == "length"
    text = resp.message.text
    assert "one two three four five six seven eight nine ten".startswith(text)
    assert 0 < tokenizer.count_text(text) <= 3
    assert resp.usage.output_tokens == tokenizer.count_text(text)


def test_max_tokens_large_enough_keeps_stop():
    resp = core.respond(req("say: short", max_tokens=50))
    assert (resp.message.text, resp.finish_reason) == ("short", "stop")


def test_one_long_word_truncates_by_characters():
    word = "x" * 400
    resp = core.respond(req(f"say: {word}", max_tokens=2))
    assert resp.finish_reason == "length"
    assert word.startswith(resp.message.text) and resp.message.text
    assert tokenizer.count_text(resp.message.text) <= 2


def test_stop_sequence_cuts_text():
    assert core.reply_text(req("say: alpha STOP beta", stop=("STOP",))) == "alpha "


def test_usage_is_honest():
    r = req("say: hello world")
    u = core.respond(r).usage
    assert u.input_tokens == tokenizer.count_request(r)
    assert u.output_tokens == tokenizer.count_text("hello world")
    assert u.cached_input_tokens == 0


# ---------------------------------------------------------------- tools

def test_parallel_tool_calls_for_every_named_tool():
    r = req("use get_weather and get_time for city=Paris please", tools=(WEATHER, TIME))
    resp = core.respond(r)
    calls = resp.message.tool_calls
    assert [t.name for t in calls] == ["get_weather", "get_time"]
    assert resp.finish_reason == "tool_calls"
    assert resp.message.text == ""
    assert all(t.id.startswith("call_") for t in calls)
    assert len({t.id for t in calls}) == 2
    args = json.loads(calls[0].arguments)
    assert args == {"city": "Paris", "days": 42, "ratio": 42.0, "metric": True,
                    "unit": "celsius", "where": {"lat": 42.0}, "tags": []}
    assert isinstance(args["ratio"], float) and isinstance(args["days"], int)
    assert core.respond(r) == resp
    expected_out = sum(tokenizer.count_text(t.name) + tokenizer.count_text(t.arguments)
                       for t in calls)
    assert resp.usage.output_tokens == expected_out


def test_parallel_false_keeps_first():
    r = req("get_weather get_time", tools=(WEATHER, TIME), parallel_tool_calls=False)
    assert [t.name for t in core.respond(r).message.tool_calls] == ["get_weather"]


def test_word_tool_calls_first_tool_and_plain_prompt_does_not():
    assert [t.name for t in core.respond(req("use a tool", tools=(WEATHER, TIME))).message.tool_calls] \
        == ["get_weather"]
    resp = core.respond(req("what is up", tools=(WEATHER, TIME)))
    assert resp.message.tool_calls == () and resp.finish_reason == "stop"


def test_tool_choice_modes():
    named = req("hello", tools=(WEATHER, TIME), tool_choice=c.ToolChoice("tool", "get_time"))
    assert [t.name for t in core.respond(named).message.tool_calls] == ["get_time"]
    required = req("hello", tools=(WEATHER, TIME), tool_choice=c.ToolChoice("required"))
    assert [t.name for t in core.respond(required).message.tool_calls] == ["get_weather"]
    none = req("get_weather now", tools=(WEATHER,), tool_choice=c.ToolChoice("none"))
    assert core.respond(none).message.tool_calls == ()


def test_tool_result_turn_replies_with_text():
    call = c.ToolCallPart("call_1", "get_weather", '{"city":"Paris"}')
    msgs = (user("get_weather for Paris"),
            c.Message("assistant", (call,)),
            c.Message("tool", (c.ToolResultPart("call_1", (c.TextPart("sunny, 21C"),)),)))
    r = c.Request("sim-small", msgs, tools=(WEATHER,))
    resp = core.respond(r)
    assert resp.message.text == "Tool result received: sunny, 21C"
    assert resp.finish_reason == "stop" and resp.message.tool_calls == ()
    # Anthropic style: the result rides in a user message.
    msgs2 = msgs[:2] + (c.Message("user", (c.ToolResultPart("call_1", (c.TextPart("rain"),)),)),)
    assert core.reply_text(c.Request("sim-small", msgs2, tools=(WEATHER,))) == \
        "Tool result received: rain"


# ---------------------------------------------------------------- JSON mode

def test_json_object_mode():
    text = core.reply_text(req("say: hi", response_format=c.ResponseFormat("json_object")))
    assert json.loads(text) == {"reply": "hi"}


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 50, "maximum": 60},
        "score": {"type": "number"},
        "ok": {"type": "boolean"},
        "kind": {"enum": ["a", "b"]},
        "when": {"type": "string", "format": "date"},
        "maybe": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1},
        "nested": {"type": "object", "properties": {"x": {"type": ["integer", "null"]}}},
    },
    "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "integer"}}}},
}


def test_json_schema_mode_matches_types():
    r = req("name=Ada", response_format=c.ResponseFormat("json_schema", schema=SCHEMA))
    value = json.loads(core.reply_text(r))
    assert value == {"name": "Ada", "age": 50, "score": 42.0, "ok": True, "kind": "a",
                     "when": "2024-01-01", "maybe": "sim-maybe", "items": [{"id": 42}],
                     "nested": {"x": 42}}


def test_synthesize_survives_odd_schemas():
    recursive = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    assert isinstance(core.synthesize(recursive), dict)
    for odd in ({}, {"type": "wat"}, {"properties": 3}, {"$ref": "#/nope"}, True, None,
                {"anyOf": []}, {"type": "array", "items": 7, "minItems": 2}):
        json.dumps(core.synthesize(odd))


# ---------------------------------------------------------------- streams

def _cases():
    return [
        req("say: hello streaming world"),
        req("get_weather and get_time", tools=(WEATHER, TIME)),
        req("say: a b c d e f", max_tokens=2),
        req("x", response_format=c.ResponseFormat("json_schema", schema=SCHEMA)),
        req("say:"),
    ]


def test_collect_stream_equals_respond():
    for r in _cases():
        for n in (1, 3, 8, 1000):
            events = core.stream_events(r, SimOptions(chunk_chars=n))
            assert c.collect_stream(events) == core.respond(r)


def test_stream_shape_and_chunking():
    events = core.stream_events(req("say: abcdefghij"), SimOptions(), Fault(chunk_chars=4))
    assert isinstance(events[0], c.StreamStart)
    assert [e.text for e in events if isinstance(e, c.TextDelta)] == ["abcd", "efgh", "ij"]
    assert isinstance(events[-2], c.Finish) and isinstance(events[-1], c.UsageEvent)


def test_no_usage_fault_drops_usage_event():
    events = core.stream_events(req("say: hi"), SimOptions(), Fault(no_usage=True))
    assert not any(isinstance(e, c.UsageEvent) for e in events)
    assert isinstance(events[-1], c.Finish)


def test_split_at_disconnect_and_pauses():
    events = core.stream_events(req("say: abcdefgh"), SimOptions(chunk_chars=2))
    assert core.split_at_disconnect(events, Fault()) == (events, False)
    assert core.split_at_disconnect(events, Fault(disconnect_after=2)) == (events[:2], True)
    assert core.split_at_disconnect(events, Fault(disconnect_after=len(events)))[1] is False
    p = core.pauses(events, 0.5)
    assert p[:2] == [0.0, 0.0] and p[2:5] == [0.5, 0.5, 0.5] and p[-2:] == [0.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=80), n=st.integers(1, 20),
       max_tokens=st.one_of(st.none(), st.integers(1, 20)))
def test_any_prompt_streams_consistently(text, n, max_tokens):
    r = req(text, max_tokens=max_tokens, tools=(WEATHER,))
    events = core.stream_events(r, SimOptions(chunk_chars=n))
    assert c.collect_stream(events) == core.respond(r)
