"""codecs/openai_responses_up: the Responses API as an upstream wire (pure).

Requests keep their order (a mid-conversation system message stays where it stands)
and carry the client's Responses hosted tools unchanged; answers and streams come back
as canonical values. Streams are checked against the client-side encoder, which is
what the simulator (and OpenAI) send.
"""
from __future__ import annotations

import pytest

from gateway import canonical as c
from gateway import errors
from gateway.codecs import openai_responses, openai_responses_up as up
from gateway.codecs.openai_responses_stream import StreamEncoder


def _claude_like() -> c.Request:
    return c.Request(model="m", max_tokens=50, temperature=0.2, stop=("x",), seed=3, messages=(
        c.Message("system", (c.TextPart("Be helpful."),)),
        c.Message("user", (c.TextPart("read a.txt"),)),
        c.Message("assistant", (c.TextPart("reading"), c.ToolCallPart("call_1", "Read", '{"p":"a"}'))),
        c.Message("tool", (c.ToolResultPart("call_1", (c.TextPart("hello"),)),)),
        c.Message("system", (c.TextPart("Be terse."),)),
    ), tools=(c.Tool("Read", "read a file", {"type": "object", "properties": {"p": {"type": "string"}}}),),
        tool_choice=c.ToolChoice("auto"))


def test_request_golden():
    body = up.from_canonical_request(_claude_like(), "gpt-up")
    assert body == {
        "model": "gpt-up", "store": False, "max_output_tokens": 50, "temperature": 0.2,
        "input": [
            {"role": "system", "content": "Be helpful."},
            {"role": "user", "content": [{"type": "input_text", "text": "read a.txt"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "reading"}]},
            {"type": "function_call", "call_id": "call_1", "name": "Read", "arguments": '{"p":"a"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "hello"},
            {"role": "system", "content": "Be terse."},   # in place, not folded
        ],
        "tools": [{"type": "function", "name": "Read", "description": "read a file",
                   "parameters": {"type": "object", "properties": {"p": {"type": "string"}}}}],
        "tool_choice": "auto"}


def test_hosted_tools_go_up_as_the_client_sent_them():
    req = openai_responses.to_canonical_request({
        "model": "m", "input": "news?", "tools": [
            {"type": "web_search", "external_web_access": False},
            {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]})
    body = up.from_canonical_request(req, "gpt-up")
    assert {"type": "web_search", "external_web_access": False} in body["tools"]
    assert [t["name"] for t in body["tools"] if t["type"] == "function"] == ["f"]


def test_json_schema_and_forced_tool():
    req = c.Request(model="m", messages=(c.Message("user", (c.TextPart("x"),)),),
                    tools=(c.Tool("f"),), tool_choice=c.ToolChoice("tool", "f"),
                    response_format=c.ResponseFormat("json_schema", {"type": "object"}, "out", True))
    body = up.from_canonical_request(req, "u")
    assert body["tool_choice"] == {"type": "function", "name": "f"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "out",
                                       "schema": {"type": "object"}, "strict": True}}


def _events(resp: c.Response) -> list[dict]:
    enc = StreamEncoder("resp_1", "m", 7, openai_responses.request_echo({}))
    out = [e for ev in c.response_events(resp) for e in enc.encode(ev)]
    return out + enc.finish()


RESPONSES = [
    c.Response("resp_1", "m", c.Message("assistant", (c.TextPart("hi there"),)), "stop",
               c.Usage(12, 3, cached_input_tokens=4, reasoning_tokens=1), 7),
    c.Response("resp_1", "m", c.Message("assistant", (
        c.ThinkingPart("plan"), c.TextPart("calling"),
        c.ToolCallPart("call_a", "Read", '{"p":"a.txt"}'),
        c.ToolCallPart("call_b", "Grep", '{"q":"x"}'))), "tool_calls", c.Usage(20, 9), 7),
    c.Response("resp_1", "m", c.Message("assistant", (c.TextPart("cut"),)), "length",
               c.Usage(5, 50), 7),
]


@pytest.mark.parametrize("resp", RESPONSES)
def test_whole_responses_round_trip(resp):
    body = openai_responses.from_canonical_response(
        resp, model="m", response_id="resp_1", created_at=7,
        request_echo=openai_responses.request_echo({}))
    back = up.to_canonical_response(body)
    assert back.finish_reason == resp.finish_reason and back.usage == resp.usage
    assert back.message.parts == resp.message.parts


@pytest.mark.parametrize("resp", RESPONSES)
def test_streams_round_trip(resp):
    dec = up.StreamDecoder()
    events = [ev for e in _events(resp) for ev in dec.feed(e)]
    assert dec.finished
    assert isinstance(events[0], c.StreamStart) and events[0].id == "resp_1"
    got = c.collect_stream(events)
    assert got.finish_reason == resp.finish_reason and got.usage == resp.usage
    assert got.message.parts == resp.message.parts


def test_cut_stream_is_not_finished_and_failures_are_upstream_errors():
    dec = up.StreamDecoder()
    for e in _events(RESPONSES[0])[:-1]:
        dec.feed(e)
    assert not dec.finished
    with pytest.raises(errors.UpstreamError):
        up.StreamDecoder().feed({"type": "error", "message": "boom"})
    with pytest.raises(errors.UpstreamError):
        up.to_canonical_response({"status": "failed", "output": [], "error": {"message": "x"}})
    with pytest.raises(errors.UpstreamProtocolError):
        up.to_canonical_response({"output": "nope"})


def test_calls_without_an_id_or_name_are_protocol_errors():
    body = {"status": "completed", "output": [
        {"type": "function_call", "call_id": "", "name": "f", "arguments": "{}"}]}
    with pytest.raises(errors.UpstreamProtocolError):
        up.to_canonical_response(body)
    dec = up.StreamDecoder()
    dec.feed({"type": "response.created", "response": {"id": "r", "model": "m"}})
    with pytest.raises(errors.UpstreamProtocolError):
        dec.feed({"type": "response.output_item.added", "output_index": 0,
                  "item": {"type": "function_call", "call_id": "c", "name": ""}})
