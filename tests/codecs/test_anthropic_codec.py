"""Anthropic Messages codec: requests, responses and streams in both directions."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import anthropic.types as at
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.canonical import (
    Finish,
    ImagePart,
    Message,
    Request,
    Response,
    ResponseFormat,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
    UsageEvent,
    collect_stream,
    response_events,
)
from gateway.codecs.anthropic import (
    DEFAULT_MAX_TOKENS,
    JSON_INSTRUCTION,
    REDACTED_PREFIX,
    from_canonical_request,
    from_canonical_response,
    to_canonical_request,
    to_canonical_response,
)
from gateway.codecs.anthropic import StreamDecoder, StreamEncoder
from gateway.errors import InvalidRequest, UpstreamError, UpstreamProtocolError

GOLDEN = Path(__file__).parent / "golden" / "anthropic"
_EVENT_TYPES = {
    "message_start": at.RawMessageStartEvent, "content_block_start": at.RawContentBlockStartEvent,
    "content_block_delta": at.RawContentBlockDeltaEvent,
    "content_block_stop": at.RawContentBlockStopEvent, "message_delta": at.RawMessageDeltaEvent,
    "message_stop": at.RawMessageStopEvent,
}


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def wire(value):
    return json.loads(json.dumps(value))


def body(**kw) -> dict:
    return {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **kw}


def decode_stream(events) -> tuple[list, StreamDecoder]:
    d = StreamDecoder()
    out = [ev for e in events for ev in d.feed(wire(e))]
    return out + d.close(), d


def encode_stream(events, input_tokens=0, fallback=None) -> list[tuple[str, dict]]:
    enc = StreamEncoder("msg_1", "public", input_tokens)
    return [f for ev in events for f in enc.encode(ev)] + enc.close(fallback)


def sdk_message(frames) -> at.Message:
    """Run frames through the official SDK's own stream accumulator."""
    snapshot, bufs = None, {}
    for name, data in frames:
        assert name == data["type"]
        if name == "ping":
            continue
        event = _EVENT_TYPES[name].model_validate(wire(data))
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    return at.Message.model_validate(snapshot.to_dict())


# ---------------------------------------------------------------- client requests

def test_golden_agent_turn_request():
    req = to_canonical_request(golden("request_agent_turn")["body"])
    assert req.model == "claude-sonnet-4-5" and req.max_tokens == 1024
    assert req.messages == (
        Message("system", (TextPart("You are a field assistant."),
                           TextPart("Site manual: always report wind."))),
        Message("user", (
            ImagePart(data_b64="/9j/4AAQSkZJRg==", media_type="image/jpeg"),
            ImagePart(url="https://example.com/site.png"),
            TextPart("Log: crane idle."),
            TextPart("What is the weather at the site and what does the crane camera show?"))),
        Message("assistant", (
            ThinkingPart("Need weather and camera.", "sig-abc"),
            TextPart("Checking both."),
            ToolCallPart("toolu_01A", "get_weather", '{"city":"Paris"}'),
            ToolCallPart("toolu_01B", "camera", "{}"))),
        Message("user", (
            ToolResultPart("toolu_01A", (TextPart("18C, wind 20 km/h"),
                                         ImagePart(data_b64="iVBORw0KGgo=", media_type="image/png"))),
            ToolResultPart("toolu_01B", (TextPart("camera offline"),), is_error=True))),
    )
    assert req.tools == (
        Tool("get_weather", "Weather by city", {"type": "object", "properties": {"city": {"type": "string"}},
                                                "required": ["city"]}),
        Tool("camera", None, {"type": "object", "properties": {}}))
    assert req.tool_choice == ToolChoice("auto") and req.parallel_tool_calls is False
    assert req.stop == ("\n\nHuman:",) and req.temperature == 1.0 and req.top_k == 40
    assert req.user == "user-7" and req.stream
    assert req.metadata == {
        "anthropic_thinking": {"type": "enabled", "budget_tokens": 2048},
        "anthropic_cache_control": {"system": [[1, {"type": "ephemeral"}]],
                                    "tools": [[1, {"type": "ephemeral"}]]},
    }


def test_cache_breakpoints_survive_history_put_in_front():
    raw = body(system=[{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
               messages=[{"role": "user", "content": [
                   {"type": "text", "text": "q", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}])
    req = to_canonical_request(raw)
    history = (Message("user", (TextPart("old q"),)), Message("assistant", (TextPart("old a"),)))
    sessioned = dataclasses.replace(req, messages=(
        req.messages[0], Message("system", (TextPart("summary"),)), *history, *req.messages[1:]))
    up = from_canonical_request(sessioned, "u")
    assert up["system"] == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}},
                            {"type": "text", "text": "summary"}]
    assert up["messages"][:2] == [{"role": "user", "content": "old q"},
                                  {"role": "assistant", "content": "old a"}]
    assert up["messages"][2]["content"] == [{"type": "text", "text": "q",
                                             "cache_control": {"type": "ephemeral", "ttl": "1h"}}]


def test_golden_request_survives_an_anthropic_upstream():
    original = golden("request_agent_turn")["body"]
    req = to_canonical_request(original)
    up = wire(from_canonical_request(req, "claude-upstream"))
    assert to_canonical_request(up) == dataclasses.replace(req, model="claude-upstream")
    # Anthropic-only options come back where Anthropic expects them.
    assert up["system"][1]["cache_control"] == {"type": "ephemeral"}
    assert up["tools"][1]["cache_control"] == {"type": "ephemeral"}
    assert up["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert up["thinking"] == original["thinking"] and up["metadata"] == {"user_id": "user-7"}
    assert up["messages"][1]["content"][0] == {"type": "thinking", "thinking": "Need weather and camera.",
                                               "signature": "sig-abc"}
    assert "service_tier" not in up


def test_minimal_request_and_string_system():
    assert to_canonical_request(body()) == Request(
        "claude-x", (Message("user", (TextPart("hi"),)),), max_tokens=100)
    req = to_canonical_request(body(system="Be brief."))
    assert req.messages[0] == Message("system", (TextPart("Be brief."),))
    assert from_canonical_request(req, "u")["system"] == "Be brief."
    assert to_canonical_request(body(system=[])) == to_canonical_request(body())


def test_nulls_mean_not_given():
    assert to_canonical_request(body(system=None, tools=None, tool_choice=None, temperature=None,
                                     stop_sequences=None, metadata=None, thinking=None, stream=None,
                                     top_k=None)) == to_canonical_request(body())


def test_count_tokens_bodies_need_no_max_tokens():
    raw = body()
    del raw["max_tokens"]
    assert to_canonical_request(raw, require_max_tokens=False).max_tokens is None
    with pytest.raises(InvalidRequest) as info:
        to_canonical_request(raw)
    assert info.value.field == "max_tokens"


def test_tool_choice_shapes():
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    cases = [({"type": "any"}, ToolChoice("required"), None),
             ({"type": "none"}, ToolChoice("none"), None),
             ({"type": "tool", "name": "f", "disable_parallel_tool_use": False}, ToolChoice("tool", "f"), True)]
    for raw, choice, parallel in cases:
        req = to_canonical_request(body(tools=tools, tool_choice=raw))
        assert (req.tool_choice, req.parallel_tool_calls) == (choice, parallel)
        assert to_canonical_request(wire(from_canonical_request(req, "claude-x"))) == req


def test_output_config_format_is_json_schema_both_ways():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = to_canonical_request(body(output_config={"effort": "high",
                                                   "format": {"type": "json_schema", "schema": schema}}))
    assert req.response_format == ResponseFormat("json_schema", schema)
    assert req.metadata == {"anthropic_output_config": {"effort": "high"}}
    up = from_canonical_request(req, "u")
    assert up["output_config"] == {"effort": "high", "format": {"type": "json_schema", "schema": schema}}


def test_redacted_thinking_history_round_trips():
    req = to_canonical_request(body(messages=[
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "EmwKAhgB"},
                                          {"type": "text", "text": "a"}]}]))
    assert req.messages[1].parts[0] == ThinkingPart("", REDACTED_PREFIX + "EmwKAhgB")
    up = from_canonical_request(req, "u")
    assert up["messages"][1]["content"][0] == {"type": "redacted_thinking", "data": "EmwKAhgB"}


BAD_REQUESTS = [
    ([], None, "JSON object"),
    (body(model=""), "model", "non-empty"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens", "required"),
    (body(max_tokens=0), "max_tokens", "positive"),
    (body(max_tokens=True), "max_tokens", "positive"),
    (body(messages=[]), "messages", "non-empty"),
    (body(messages=["x"]), "messages[0]", "object"),
    (body(messages=[{"role": "system", "content": "x"}]), "messages[0].role", "system"),
    (body(messages=[{"role": "user", "content": 3}]), "messages[0].content", "string or an array"),
    (body(messages=[{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]),
     "messages[0].content[0].type", "cannot appear in a user message"),
    (body(messages=[{"role": "user", "content": [{"type": "server_tool_use"}]}]),
     "messages[0].content[0].type", "not supported"),
    (body(messages=[{"role": "user", "content": [{"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}]}]),
     "messages[0].content[0].source.type", "PDF"),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]),
     "messages[0].content[0].source.type", "file"),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]),
     "messages[0].content[0].source.media_type", "required"),
    (body(messages=[{"role": "user", "content": [{"type": "tool_result"}]}]),
     "messages[0].content[0].tool_use_id", "required"),
    (body(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                                  "content": [{"type": "search_result"}]}]}]),
     "messages[0].content[0].content[0]", "text, image"),
    (body(messages=[{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": "{}"}]}]),
     "messages[0].content[0].input", "object"),
    (body(messages=[{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "yes"}]}]),
     "messages[0].content[0].cache_control", "object"),
    (body(system=5), "system", "string or an array"),
    (body(system=[{"type": "image"}]), "system[0]", "text block"),
    (body(temperature=1.5), "temperature", "0 to 1"),
    (body(top_p="1"), "top_p", "number"),
    (body(top_k=-1), "top_k", "non-negative"),
    (body(stop_sequences="END"), "stop_sequences", "array"),
    (body(tools={}), "tools", "array"),
    (body(tools=[{"type": 7, "name": "web_search"}]), "tools[0].type", "string"),
    (body(tools=[{"name": "f"}]), "tools[0].input_schema", "required"),
    (body(tools=[{"input_schema": {}}]), "tools[0].name", "required"),
    (body(tool_choice="auto"), "tool_choice", "object"),
    (body(tool_choice={"type": "required"}), "tool_choice.type", "auto, any, tool, none"),
    (body(tool_choice={"type": "tool", "name": "g"}), "tool_choice.name", "not among tools"),
    (body(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
     "tool_choice.disable_parallel_tool_use", "boolean"),
    (body(metadata={"user_id": 5}), "metadata.user_id", "string"),
    (body(metadata=[]), "metadata", "object"),
    (body(thinking={"type": "enabled"}), "thinking.budget_tokens", "required"),
    (body(thinking="on"), "thinking", "type"),
    (body(output_config={"format": {"type": "json_object"}}), "output_config.format", "json_schema"),
    (body(stream="true"), "stream", "boolean"),
    (body(mcp_servers=[{"type": "url", "url": "https://x"}]), "mcp_servers", "MCP"),
]


@pytest.mark.parametrize("payload,field,words", BAD_REQUESTS)
def test_bad_requests_name_the_field(payload, field, words):
    with pytest.raises(InvalidRequest) as info:
        to_canonical_request(payload)
    assert info.value.field == field
    assert words in info.value.message


# ---------------------------------------------------------------- upstream requests

def test_other_dialects_requests_reach_anthropic_in_its_shape():
    req = Request(
        "gpt-ish",
        (Message("system", (TextPart("S1"),)),
         Message("user", (TextPart("look"), ImagePart(data_b64="iVBORw0KGgo="))),
         Message("assistant", (ThinkingPart("unsigned reasoning"), ImagePart(url="https://x/i.png"),
                               ToolCallPart("c1", "f", '{"a":1}'), ToolCallPart("c2", "f", "not json"))),
         Message("tool", (ToolResultPart("c1", (TextPart("r1"),)),)),
         Message("tool", (ToolResultPart("c2", (TextPart("r2"),), is_error=True),)),
         Message("system", (TextPart("S2"),)),
         Message("user", (TextPart("go on"),))),
        temperature=1.7, seed=3, tools=(Tool("f"),), tool_choice=ToolChoice("required"),
        parallel_tool_calls=False, response_format=ResponseFormat("json_object"), user="u1",
    )
    up = from_canonical_request(req, "claude-up", system_in_place=False)
    assert up["system"] == [{"type": "text", "text": "S1"}, {"type": "text", "text": "S2"},
                            {"type": "text", "text": JSON_INSTRUCTION}]
    assert up["max_tokens"] == DEFAULT_MAX_TOKENS and up["temperature"] == 1.0
    assert "seed" not in up and up["metadata"] == {"user_id": "u1"}
    assert up["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert up["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert up["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
            {"type": "tool_use", "id": "c2", "name": "f", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": [{"type": "text", "text": "r1"}]},
            {"type": "tool_result", "tool_use_id": "c2", "content": [{"type": "text", "text": "r2"}],
             "is_error": True}]},
        {"role": "user", "content": "go on"},
    ]


def test_mid_conversation_system_messages_stay_in_place():
    body_in = body(system="lead", messages=[
        {"role": "user", "content": "say: hi"}, {"role": "system", "content": "Be terse."},
        {"role": "assistant", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"role": "user", "content": "again"}])
    req = to_canonical_request(body_in)
    assert [m.role for m in req.messages] == ["system", "user", "system", "assistant", "system", "user"]
    up = from_canonical_request(req, "claude-up")
    assert up["system"] == "lead"
    assert up["messages"] == [
        {"role": "user", "content": "say: hi"}, {"role": "system", "content": "Be terse."},
        {"role": "assistant", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"role": "user", "content": "again"}]
    folded = from_canonical_request(req, "claude-up", system_in_place=False)
    assert [b["text"] for b in folded["system"]] == ["lead", "Be terse.", "A", "B"]
    assert [m["role"] for m in folded["messages"]] == ["user", "assistant", "user"]


def test_server_tools_ride_to_anthropic_and_nowhere_else():
    from gateway.codecs import openai_chat
    tools = [{"name": "f", "input_schema": {"type": "object"}},
             {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    req = to_canonical_request(body(tools=tools))
    assert [t.name for t in req.tools] == ["f"]
    assert req.metadata["hosted_tools"] == [
        {"family": "anthropic", "name": "web_search", "spec": tools[1]}]
    assert from_canonical_request(req, "u")["tools"][1] == tools[1]
    assert [t["function"]["name"] for t in openai_chat.from_canonical_request(req, "u")["tools"]] == ["f"]


def test_tool_results_go_first_in_a_user_turn():
    req = Request("m", (Message("user", (TextPart("and"), ToolResultPart("c", ()))),), max_tokens=5)
    assert from_canonical_request(req, "u")["messages"][0]["content"] == [
        {"type": "tool_result", "tool_use_id": "c"}, {"type": "text", "text": "and"}]


def test_json_schema_goes_out_as_structured_output():
    schema = {"type": "object"}
    req = Request("m", (Message("user", (TextPart("x"),)),), max_tokens=5,
                  response_format=ResponseFormat("json_schema", schema, "r", True))
    up = from_canonical_request(req, "u")
    assert up["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "system" not in up


# ---------------------------------------------------------------- responses

def test_golden_response_with_cache_usage():
    resp = to_canonical_response(golden("response_cache_usage")["body"])
    assert resp.message == Message("assistant", (
        TextPart("The contract's termination clause requires 30 days' notice."),))
    assert resp.finish_reason == "stop" and resp.id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert resp.usage == Usage(input_tokens=21 + 188 + 10250, output_tokens=393, cached_input_tokens=10250)
    out = from_canonical_response(resp, "public")
    at.Message.model_validate(out)
    assert out["usage"] == {"input_tokens": 209, "output_tokens": 393,
                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10250}
    assert to_canonical_response(wire(out)).usage == resp.usage


def test_response_round_trip_with_every_block_kind():
    resp = Response("msg_x", "public", Message("assistant", (
        ThinkingPart("hmm", "sig"), ThinkingPart("", REDACTED_PREFIX + "opaque"), TextPart("Calling."),
        ToolCallPart("toolu_1", "f", '{"a":[1,2]}'))), "tool_calls", Usage(10, 5))
    out = from_canonical_response(resp, "public")
    at.Message.model_validate(out)
    assert [b["type"] for b in out["content"]] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert out["stop_reason"] == "tool_use"
    assert to_canonical_response(wire(out)) == resp


@pytest.mark.parametrize("wire_reason,canonical", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), (None, "stop"), ("something_new", "stop"),
])
def test_stop_reasons_in(wire_reason, canonical):
    raw = {"id": "m", "model": "c", "content": [], "stop_reason": wire_reason,
           "usage": {"input_tokens": 1, "output_tokens": 1}}
    assert to_canonical_response(raw).finish_reason == canonical


def test_stop_reasons_out_are_ones_the_sdk_knows():
    for reason, expected in [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
                             ("content_filter", "refusal"), ("error", "end_turn")]:
        out = from_canonical_response(Response("m", "c", Message("assistant", ()), reason), "p")
        assert at.Message.model_validate(out).stop_reason == expected


def test_upstream_error_body_is_an_upstream_error():
    with pytest.raises(UpstreamError, match="overloaded_error: Overloaded"):
        to_canonical_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


@pytest.mark.parametrize("raw", [
    None, [], {"id": 1, "model": "c", "content": []}, {"id": "m", "model": "c", "content": {}},
    {"id": "m", "model": "c", "content": [{"type": "text"}]},
    {"id": "m", "model": "c", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]},
    {"id": "m", "model": "c", "content": [], "usage": {"input_tokens": -1, "output_tokens": 0}},
    {"id": "m", "model": "c", "content": [], "stop_reason": 7},
])
def test_malformed_responses_are_protocol_errors(raw):
    with pytest.raises(UpstreamProtocolError):
        to_canonical_response(raw)


def test_unknown_response_blocks_are_skipped():
    raw = {"id": "m", "model": "c", "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2},
           "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                       {"type": "text", "text": "ok"}]}
    assert to_canonical_response(raw).message == Message("assistant", (TextPart("ok"),))


# ---------------------------------------------------------------- streams in

def test_golden_tool_use_stream():
    events, d = decode_stream(golden("stream_tool_use_json_deltas")["events"])
    assert d.finished
    assert events[0] == StreamStart("msg_014p7gG3wDgGV9EUtLvnow3U", "claude-sonnet-4-5-20250929")
    assert events[-2:] == [Finish("tool_calls"), UsageEvent(Usage(input_tokens=472, output_tokens=89))]
    assert ToolCallStart(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather") in events
    resp = collect_stream(events)
    assert resp.message.text == "Okay, let me check the weather for San Francisco, CA:"
    (call,) = resp.message.tool_calls
    assert json.loads(call.arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}


def test_golden_thinking_stream():
    events, d = decode_stream(golden("stream_thinking_signature")["events"])
    assert d.finished
    resp = collect_stream(events)
    sig = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds7mWQVRqbtsd2QIjbSS6w8KwuW3EPzaUNC6kHj5c"
    assert resp.message.parts == (ThinkingPart("The user asks for 27 * 453.\n27 * 453 = 12231.", sig),
                                  TextPart("27 × 453 = **12,231**"))
    assert resp.finish_reason == "stop"
    assert resp.usage == Usage(input_tokens=1236, output_tokens=180, cached_input_tokens=1200)


def test_stream_cut_before_message_stop_is_not_finished():
    raw = golden("stream_tool_use_json_deltas")["events"]
    _, d = decode_stream(raw[:-1])
    assert not d.finished


def test_stream_error_event_raises():
    d = StreamDecoder()
    d.feed(golden("stream_tool_use_json_deltas")["events"][0])
    with pytest.raises(UpstreamError, match="overloaded_error"):
        d.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def test_stream_tolerates_unknown_events_and_deltas():
    start = golden("stream_tool_use_json_deltas")["events"][0]
    events, d = decode_stream([
        start, {"type": "future_event", "x": 1},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "web_search_tool_result"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"}, {"type": "ping"}])
    assert d.finished and collect_stream(events).message == Message("assistant", (TextPart("hi"),))


@pytest.mark.parametrize("events", [
    [{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}],
    [{"type": "message_start", "message": {"id": "m", "model": "c"}},
     {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}],
    [{"type": "message_start", "message": {"id": "m", "model": "c"}},
     {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
     {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}}],
    [{"type": "message_start", "message": {"id": "m", "model": "c"}}, {"type": "message_stop"},
     {"type": "message_start", "message": {"id": "m", "model": "c"}}],
    [{"type": "message_start", "message": {"id": "m", "model": "c"}},
     {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
     {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "late"}}],
    ["not an object"],
])
def test_malformed_streams_are_protocol_errors(events):
    with pytest.raises(UpstreamProtocolError):
        decode_stream(events)


# ---------------------------------------------------------------- streams out

def test_encoder_emits_anthropics_exact_sequence():
    frames = encode_stream([
        StreamStart("up", "up-model"), ThinkingDelta("think"), ThinkingDelta("", "sig"),
        TextDelta("Hel"), TextDelta("lo"), ToolCallStart(0, "toolu_a", "f"), ToolCallDelta(0, '{"a":'),
        ToolCallDelta(0, "1}"), ToolCallStart(1, "toolu_b", "g"), Finish("tool_calls"),
        UsageEvent(Usage(30, 7, cached_input_tokens=10))], input_tokens=25)
    shape = [(n, d.get("index"), (d.get("delta") or d.get("content_block") or {}).get("type"))
             for n, d in frames]
    assert shape == [
        ("message_start", None, None), ("ping", None, None),
        ("content_block_start", 0, "thinking"), ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"), ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"), ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"), ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"), ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"), ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"), ("content_block_stop", 3, None),
        ("message_delta", None, None), ("message_stop", None, None),
    ]
    assert frames[0][1]["message"]["usage"]["input_tokens"] == 25
    assert frames[-2][1] == {"type": "message_delta",
                             "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                             "usage": {"input_tokens": 20, "output_tokens": 7,
                                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10}}
    msg = sdk_message(frames)
    assert msg.id == "msg_1" and msg.model == "public" and msg.stop_reason == "tool_use"
    assert msg.content[0].signature == "sig" and msg.content[1].text == "Hello"
    assert msg.content[2].input == {"a": 1} and msg.content[3].input == {}
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (20, 10, 7)


def test_encoder_usage_fallback_and_absence():
    fallback = Usage(12, 4, estimated=True)
    frames = encode_stream([StreamStart("a", "b"), TextDelta("x"), Finish("length")], fallback=fallback)
    assert frames[-2][1]["usage"]["output_tokens"] == 4
    assert frames[-2][1]["delta"]["stop_reason"] == "max_tokens"
    bare = encode_stream([StreamStart("a", "b"), TextDelta("x"), Finish("stop")])
    assert "usage" not in bare[-2][1]
    events, _ = decode_stream([d for _, d in bare])
    assert not any(isinstance(e, UsageEvent) for e in events)


def test_encoder_redacted_thinking_and_a_second_signed_block():
    frames = encode_stream([StreamStart("a", "b"), ThinkingDelta("", REDACTED_PREFIX + "opaque"),
                            ThinkingDelta("one", "s1"), ThinkingDelta("two", "s2"), Finish("stop")],
                           fallback=Usage(1, 1))
    msg = sdk_message(frames)
    assert [b.type for b in msg.content] == ["redacted_thinking", "thinking", "thinking"]
    assert msg.content[0].data == "opaque" and msg.content[2].signature == "s2"


def test_golden_streams_survive_the_encoder():
    for name in ("stream_tool_use_json_deltas", "stream_thinking_signature"):
        events, _ = decode_stream(golden(name)["events"])
        again, d = decode_stream([data for _, data in encode_stream(events)])
        assert d.finished
        assert collect_stream(again) == dataclasses.replace(collect_stream(events), id="msg_1", model="public")


texts = st.text(max_size=12)
parts = st.lists(st.one_of(
    st.builds(TextPart, texts),
    st.builds(ThinkingPart, st.text(min_size=1, max_size=8), st.none() | st.text(min_size=1, max_size=8)),
    st.builds(ToolCallPart, st.text(min_size=1, max_size=6), st.text(min_size=1, max_size=6),
              st.sampled_from(["{}", '{"a":1}', '{"x":"y","n":[1,2]}']))), max_size=5)
counts = st.integers(0, 10_000)


@settings(max_examples=200, deadline=None)
@given(parts, st.sampled_from(["stop", "length", "tool_calls", "content_filter"]), counts, counts, counts)
def test_stream_round_trip_property(ps, reason, cached, fresh, out):
    # Anthropic streams blocks in canonical order: thinking, then text, then tool calls.
    order = {ThinkingPart: 0, TextPart: 1, ToolCallPart: 2}
    ps = sorted(ps, key=lambda p: order[type(p)])
    thinking = [p for p in ps if isinstance(p, ThinkingPart)]
    merged = ([ThinkingPart("".join(p.text for p in thinking),
                            next((p.signature for p in reversed(thinking) if p.signature), None))]
              if thinking else [])
    text = "".join(p.text for p in ps if isinstance(p, TextPart))
    merged += [TextPart(text)] if text else []
    merged += [p for p in ps if isinstance(p, ToolCallPart)]
    resp = Response("msg_1", "public", Message("assistant", tuple(merged)), reason,
                    Usage(fresh + cached, out, cached_input_tokens=cached))
    frames = encode_stream(response_events(resp))
    events, d = decode_stream([data for _, data in frames])
    assert d.finished and collect_stream(events) == resp
    sdk = sdk_message(frames)
    assert sdk.usage.output_tokens == out and sdk.usage.cache_read_input_tokens == cached
