"""OpenAI Chat Completions codec: requests, responses and streams in both directions."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.canonical import (
    Finish, ImagePart, Message, Request, Response, ResponseFormat, StreamStart, TextDelta,
    TextPart, ThinkingDelta, ThinkingPart, Tool, ToolCallDelta, ToolCallPart, ToolCallStart,
    ToolChoice, ToolResultPart, Usage, UsageEvent, collect_stream, response_events,
)
from gateway.codecs.openai_chat import StreamDecoder, StreamEncoder
from gateway.codecs.openai_chat import (
    from_canonical_request, from_canonical_response,
    to_canonical_request, to_canonical_response,
)
from gateway.errors import InvalidRequest, UpstreamError, UpstreamProtocolError

GOLDEN = Path(__file__).parent / "golden" / "openai_chat"


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def wire(value):
    """What the other side would see after JSON serialisation."""
    return json.loads(json.dumps(value))


def body(**kw) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **kw}


def decode_stream(chunks) -> tuple[list, StreamDecoder]:
    d = StreamDecoder()
    events = [ev for c in chunks for ev in d.feed(c)]
    return events + d.close(), d


# ---------------------------------------------------------------- client requests

def test_golden_agent_turn_request():
    req = to_canonical_request(golden("request_agent_turn")["body"])
    assert req.model == "gpt-4o"
    assert req.messages == (
        Message("system", (TextPart("You are terse."),)),
        Message("user", (
            TextPart("What is in this picture, and what's the weather there?"),
            ImagePart(data_b64="/9j/4AAQSkZJRg==", media_type="image/jpeg", detail="low"))),
        Message("assistant", (ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),)),
        Message("tool", (ToolResultPart("call_1", (TextPart("18C, clear"),)),)),
    )
    assert req.tools == (Tool("get_weather", "Weather by city", {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),)
    assert req.tool_choice == ToolChoice("auto")
    assert req.parallel_tool_calls is False
    assert req.max_tokens == 256  # max_completion_tokens wins over max_tokens
    assert req.temperature == 0.2
    assert req.stream and req.include_usage
    assert req.metadata == {"openai_extra": {"presence_penalty": 0.5}}


def test_minimal_request_defaults():
    req = to_canonical_request(body())
    assert req == Request("gpt-4o", (Message("user", (TextPart("hi"),)),))


def test_nulls_mean_not_given():
    req = to_canonical_request(body(temperature=None, stop=None, tools=None, stream=None,
                                    seed=None, user=None, n=None, max_tokens=None))
    assert req == to_canonical_request(body())


def test_request_fields():
    req = to_canonical_request(body(
        stop="END", seed=7, user="u1", top_p=1, temperature=2, n=1, max_tokens=5,
        tool_choice={"type": "function", "function": {"name": "f"}},
        tools=[{"type": "function", "function": {"name": "f"}}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True}},
    ))
    assert req.stop == ("END",) and req.seed == 7 and req.user == "u1"
    assert req.top_p == 1.0 and req.temperature == 2.0 and req.max_tokens == 5
    assert req.tools == (Tool("f"),) and req.tool_choice == ToolChoice("tool", "f")
    assert req.response_format == ResponseFormat("json_schema", {"type": "object"}, "r", True)
    assert to_canonical_request(body(stop=["a", "b"])).stop == ("a", "b")
    assert to_canonical_request(body(response_format={"type": "json_object"})).response_format \
        == ResponseFormat("json_object")


def test_include_usage_only_counts_with_stream():
    assert not to_canonical_request(body(stream_options={"include_usage": True})).include_usage
    assert not to_canonical_request(body(stream=True)).include_usage


def test_message_shapes():
    req = to_canonical_request(body(messages=[
        {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "name": "ann", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": "", "tool_calls": []},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}], "name": "bot"},
        {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "r"}]},
    ]))
    assert req.messages == (
        Message("system", (TextPart("a"), TextPart("b"))),
        Message("user", (ImagePart(url="https://x/y.png"),), name="ann"),
        Message("assistant", ()),
        Message("assistant", (TextPart("no"),), name="bot"),
        Message("tool", (ToolResultPart("c", (TextPart("r"),)),)),
    )


BAD_REQUESTS = [
    ([], None, "JSON object"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "model"),
    (body(model=3), "model", "model"),
    (body(messages=None), "messages", "required"),
    (body(messages=[]), "messages", "non-empty"),
    (body(messages={"role": "user"}), "messages", "array"),
    (body(messages=[{"role": "user", "content": "x"}] * 10_001), "messages", "10000"),
    (body(messages=["hi"]), "messages[0]", "object"),
    (body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role", "one of"),
    (body(messages=[{"role": "function", "name": "f", "content": "x"}]), "messages[0].role", "tool"),
    (body(messages=[{"role": "user", "content": "x"}, {"role": "user"}, {"role": "user", "content": 5}]),
     "messages[1].content", "messages[1].content must be a string or an array of content parts"),
    (body(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]),
     "messages[0].content[0].type", "not supported"),
    (body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "http://x"}]}]),
     "messages[0].content[0].image_url", "url"),
    (body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x", "detail": "max"}}]}]),
     "messages[0].content[0].image_url.detail", "auto"),
    (body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
     "messages[0].content[0].text", "string"),
    (body(messages=[{"role": "system", "content": [{"type": "image_url"}]}]),
     "messages[0].content[0].type", "'text'"),
    (body(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id", "required"),
    (body(messages=[{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]),
     "messages[0].tool_calls[0].function.arguments", "string"),
    (body(messages=[{"role": "assistant", "tool_calls": [
        {"id": "", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]),
     "messages[0].tool_calls[0].id", "non-empty"),
    (body(messages=[{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]),
     "messages[0].function_call", "deprecated"),
    (body(messages=[{"role": "user", "content": "x", "name": 5}]), "messages[0].name", "string"),
    (body(n=2), "n", "only n=1"),
    (body(max_tokens=0), "max_tokens", "positive"),
    (body(max_tokens=1.5), "max_tokens", "positive"),
    (body(max_tokens=10, max_completion_tokens="10"), "max_completion_tokens", "positive"),
    (body(temperature=2.5), "temperature", "0 to 2"),
    (body(temperature=True), "temperature", "number"),
    (body(top_p=-0.1), "top_p", "0 to 1"),
    (body(stop=["a", "b", "c", "d", "e"]), "stop", "up to 4"),
    (body(stop=[1]), "stop", "strings"),
    (body(tools={"type": "function"}), "tools", "array"),
    (body(tools=[{"type": "function", "function": {"name": "f"}}] * 129), "tools", "128"),
    (body(tools=[{"type": "custom", "custom": {"name": "f"}}]), "tools[0].type", "function"),
    (body(tools=[{"type": "function", "function": {"description": "d"}}]),
     "tools[0].function.name", "required"),
    (body(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
     "tools[0].function.parameters", "schema"),
    (body(tool_choice="any"), "tool_choice", "auto"),
    (body(tool_choice={"type": "function", "function": {"name": "g"}}),
     "tool_choice.function.name", "not among tools"),
    (body(parallel_tool_calls="yes"), "parallel_tool_calls", "boolean"),
    (body(response_format={"type": "xml"}), "response_format.type", "json_schema"),
    (body(response_format={"type": "json_schema", "json_schema": {"name": "r"}}),
     "response_format.json_schema.schema", "required"),
    (body(stream="true"), "stream", "boolean"),
    (body(stream=True, stream_options={"include_usage": 1}), "stream_options.include_usage", "boolean"),
    (body(stream_options=[]), "stream_options", "object"),
    (body(user=1), "user", "string"),
    (body(seed="1"), "seed", "integer"),
    (body(seed=False), "seed", "integer"),
    (body(functions=[{"name": "f"}]), "functions", "tools"),
    (body(function_call="auto"), "function_call", "tool_choice"),
    (body(frequency_penalty=3), "frequency_penalty", "-2 to 2"),
]


@pytest.mark.parametrize("payload,field,words", BAD_REQUESTS)
def test_bad_requests_name_the_field(payload, field, words):
    with pytest.raises(InvalidRequest) as info:
        to_canonical_request(payload)
    assert info.value.field == field
    assert words in info.value.message


def test_schema_errors_carry_the_documented_code():
    with pytest.raises(InvalidRequest) as info:
        to_canonical_request(body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}))
    assert info.value.code == "invalid_response_format_schema"


def test_unknown_and_ignored_fields_are_dropped():
    assert to_canonical_request(body(logprobs=True, logit_bias={"1": 2}, store=True,
                                     metadata={"a": "b"}, some_future_flag=1)) \
        == to_canonical_request(body())


# ---------------------------------------------------------------- upstream requests

def test_encode_for_upstream():
    req = Request(
        "public", (
            Message("system", (TextPart("s"),)),
            Message("user", (ToolResultPart("c1", (TextPart("r1"), ImagePart(url="u"))),
                             ToolResultPart("c2", (TextPart("a"), TextPart("b"))),
                             TextPart("next"))),
            Message("assistant", (ThinkingPart("hmm", "sig"), ToolCallPart("c3", "f", "{}"))),
            Message("user", (ImagePart(data_b64="iVBORw0KGgoAAAANSUhEUg=="),)),
        ),
        max_tokens=9, top_k=40, stop=("x",), stream=True, include_usage=False,
        tool_choice=ToolChoice("required"),
        response_format=ResponseFormat("json_schema", {"type": "object"}),
    )
    out = from_canonical_request(req, "gpt-4o-mini")
    assert out["model"] == "gpt-4o-mini"
    assert out["max_tokens"] == 9 and "top_k" not in out
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["stop"] == ["x"] and out["tool_choice"] == "required"
    assert out["response_format"] == {"type": "json_schema",
                                      "json_schema": {"name": "response", "schema": {"type": "object"}}}
    assert out["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "tool", "tool_call_id": "c2",
         "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "user", "content": "next"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": [{"type": "image_url",
                                      "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}}]},
    ]
    assert "max_completion_tokens" in from_canonical_request(
        req, "o3", max_tokens_field="max_completion_tokens")


def test_encode_non_stream_sends_no_stream_options():
    out = from_canonical_request(to_canonical_request(body(temperature=0)), "m")
    assert "stream" not in out and "stream_options" not in out and out["temperature"] == 0.0


# Strategies for requests an OpenAI client could send: the shapes its wire can carry.
texts = st.text(max_size=12)
words = st.text(min_size=1, max_size=8)
schemas = st.dictionaries(words, st.one_of(st.integers(), texts, st.booleans()), max_size=3)
text_parts = st.builds(TextPart, texts)
images = st.one_of(
    st.builds(ImagePart, url=words.map(lambda w: "https://img.example/" + w),
              detail=st.sampled_from([None, "auto", "low", "high"])),
    st.builds(ImagePart, data_b64=st.text("ABCxyz019+/=", max_size=12),
              media_type=st.sampled_from(["image/png", "image/jpeg", "image/webp"])),
)
calls = st.builds(ToolCallPart, words, words, texts)
names = st.none() | words
messages = st.one_of(
    st.builds(lambda p, n: Message("system", tuple(p), n), st.lists(text_parts, min_size=1, max_size=3), names),
    st.builds(lambda p, n: Message("user", tuple(p), n),
              st.lists(text_parts | images, min_size=1, max_size=3), names),
    st.builds(lambda t, c, n: Message("assistant", tuple(t) + tuple(c), n),
              st.lists(st.builds(TextPart, words), max_size=2), st.lists(calls, max_size=2), names),
    st.builds(lambda i, p: Message("tool", (ToolResultPart(i, tuple(p)),)),
              words, st.lists(text_parts, min_size=1, max_size=2)),
)
tools = st.lists(st.builds(Tool, words, st.none() | texts, schemas), max_size=3)
formats = st.none() | st.builds(ResponseFormat, st.sampled_from(["text", "json_object"])) | \
    st.builds(ResponseFormat, st.just("json_schema"), schemas, words, st.none() | st.booleans())
unit = st.floats(0, 1, allow_nan=False)


@st.composite
def client_requests(draw) -> Request:
    tool_list = tuple(draw(tools))
    choices = [st.none(), st.builds(ToolChoice, st.sampled_from(["auto", "none", "required"]))]
    if tool_list:
        choices.append(st.sampled_from(tool_list).map(lambda t: ToolChoice("tool", t.name)))
    stream = draw(st.booleans())
    penalties = draw(st.dictionaries(st.sampled_from(["frequency_penalty", "presence_penalty"]),
                                     st.floats(-2, 2, allow_nan=False)))
    return Request(
        model=draw(words),
        messages=tuple(draw(st.lists(messages, min_size=1, max_size=5))),
        max_tokens=draw(st.none() | st.integers(1, 1 << 20)),
        temperature=draw(st.none() | st.floats(0, 2, allow_nan=False)),
        top_p=draw(st.none() | unit),
        stop=tuple(draw(st.lists(texts, max_size=4))),
        tools=tool_list,
        tool_choice=draw(st.one_of(*choices)),
        parallel_tool_calls=draw(st.none() | st.booleans()),
        response_format=draw(formats),
        stream=stream,
        include_usage=stream,  # the upstream body always asks for usage when streaming
        user=draw(st.none() | texts),
        seed=draw(st.none() | st.integers(-(1 << 63), 1 << 63)),
        metadata={"openai_extra": penalties} if penalties else {},
    )


@settings(max_examples=300, deadline=None)
@given(client_requests())
def test_request_round_trip(req):
    assert to_canonical_request(wire(from_canonical_request(req, req.model))) == req


# ---------------------------------------------------------------- responses

def test_golden_response_with_cached_tokens():
    resp = to_canonical_response(golden("response_cached_tokens")["body"])
    assert resp == Response(
        id="chatcmpl-AqK8fDq2yXjRnLHqZkzUcBDkLbKcY", model="gpt-4o-mini-2024-07-18",
        created=1737051209,
        message=Message("assistant", (
            TextPart("Let me look that up."),
            ToolCallPart("call_Xv4mW1qN", "search_docs", '{"query":"rate limits"}'))),
        finish_reason="tool_calls",
        usage=Usage(input_tokens=2006, output_tokens=300, cached_input_tokens=1920),
    )


def response_body(message: dict, finish="stop", **kw) -> dict:
    return {"id": "r", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], **kw}


@pytest.mark.parametrize("wire_reason,reason", [
    ("stop", "stop"), ("length", "length"), ("tool_calls", "tool_calls"),
    ("content_filter", "content_filter"), ("function_call", "tool_calls"), (None, "stop"),
])
def test_finish_reasons(wire_reason, reason):
    msg = {"role": "assistant", "content": "x"}
    assert to_canonical_response(response_body(msg, wire_reason)).finish_reason == reason


def test_stop_beside_tool_calls_means_tool_calls():
    msg = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert to_canonical_response(response_body(msg, "stop")).finish_reason == "tool_calls"
    assert to_canonical_response(response_body(msg, "length")).finish_reason == "length"
    events, _ = decode_stream([chunk({"tool_calls": [{"index": 0, **msg["tool_calls"][0]}]}, "stop")])
    assert events[-1] == Finish("tool_calls")


def test_response_reasoning_refusal_and_object_arguments():
    resp = to_canonical_response(response_body({
        "role": "assistant", "content": None, "refusal": "I can't help with that.",
        "reasoning": "policy", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}))
    assert resp.message.parts == (ThinkingPart("policy"), TextPart("I can't help with that."),
                                  ToolCallPart("c", "f", '{"a": 1}'))
    assert resp.usage is None


@pytest.mark.parametrize("payload", [
    [], {"choices": []}, {"choices": [{"message": "hi"}]},
    response_body({"content": 5}), response_body({"content": "x"}, "weird"),
    response_body({"content": "x"}, usage={"prompt_tokens": -1, "completion_tokens": 0}),
    response_body({"content": "x"}, usage={"prompt_tokens": 1}),
    response_body({"content": "x"}, id=5),
    response_body({"tool_calls": [{"id": "", "function": {"name": "f", "arguments": ""}}]}),
])
def test_malformed_responses(payload):
    with pytest.raises(UpstreamProtocolError):
        to_canonical_response(payload)


def test_error_body_with_200_is_an_upstream_error():
    with pytest.raises(UpstreamError, match="overloaded"):
        to_canonical_response({"error": {"message": "overloaded", "type": "server_error"}})


def test_encoded_response_validates_with_openai_sdk():
    resp = Response("chatcmpl-1", "upstream-model", Message("assistant", (
        ThinkingPart("t"), TextPart("a"), TextPart("b"), ToolCallPart("c", "f", "{}"))),
        "error", Usage(10, 5, 3, 2, estimated=True), created=99)
    out = from_canonical_response(resp, "public-model")
    parsed = ChatCompletion.model_validate(out)
    assert parsed.model == "public-model"
    assert parsed.choices[0].message.content == "ab"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage.total_tokens == 15 and parsed.usage.prompt_tokens_details.cached_tokens == 3
    assert out["choices"][0]["message"]["reasoning_content"] == "t"
    no_usage = from_canonical_response(Response("x", "m", Message("assistant", ()), "length"), "m")
    assert "usage" not in no_usage and no_usage["choices"][0]["message"]["content"] is None
    ChatCompletion.model_validate(no_usage)


usages = st.none() | st.builds(Usage, *[st.integers(0, 1 << 40)] * 4)


@st.composite
def responses(draw) -> Response:
    parts: list = []
    if draw(st.booleans()):
        parts.append(ThinkingPart(draw(words)))
    if draw(st.booleans()):
        parts.append(TextPart(draw(words)))
    ids = draw(st.lists(words, unique=True, max_size=3))
    parts += [ToolCallPart(i, draw(words), draw(words)) for i in ids]
    return Response(draw(texts), draw(texts), Message("assistant", tuple(parts)),
                    draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"])),
                    draw(usages), draw(st.integers(0, 1 << 40)))


def as_decoded(resp: Response) -> Response:
    """A natural stop that produced tool calls comes back as a tool_calls finish."""
    if resp.finish_reason == "stop" and resp.message.tool_calls:
        return dataclasses.replace(resp, finish_reason="tool_calls")
    return resp


@settings(max_examples=300, deadline=None)
@given(responses())
def test_response_round_trip(resp):
    out = wire(from_canonical_response(resp, resp.model))
    ChatCompletion.model_validate(out)
    assert to_canonical_response(out) == as_decoded(resp)


# ---------------------------------------------------------------- streams

def test_golden_parallel_tool_call_stream():
    events, d = decode_stream(golden("stream_parallel_tool_calls")["chunks"])
    assert events == [
        StreamStart("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "gpt-4o-2024-08-06", 1741570283),
        ToolCallStart(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather"),
        ToolCallDelta(0, '{"lo'), ToolCallDelta(0, 'cation": "Pa'), ToolCallDelta(0, 'ris"}'),
        ToolCallStart(1, "call_ABZ3yR6S5BHCXwEzHi6QZbGr", "get_weather"),
        ToolCallDelta(1, '{"location": '), ToolCallDelta(1, '"Tokyo"}'),
        Finish("tool_calls"),
        UsageEvent(Usage(82, 47)),
    ]
    assert d.finished
    assert collect_stream(events).message.tool_calls == (
        ToolCallPart("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", '{"location": "Paris"}'),
        ToolCallPart("call_ABZ3yR6S5BHCXwEzHi6QZbGr", "get_weather", '{"location": "Tokyo"}'),
    )


def test_golden_usage_only_final_chunk():
    events, _ = decode_stream(golden("stream_text_usage_only_final_chunk")["chunks"])
    assert events == [
        StreamStart("chatcmpl-C1xK2pQ", "o4-mini-2025-04-16", 1754000000),
        TextDelta("The answer"), TextDelta(" is 4."), Finish("stop"),
        UsageEvent(Usage(1536, 210, cached_input_tokens=1280, reasoning_tokens=192)),
    ]


def test_golden_reasoning_and_tool_call_in_one_fragment():
    events, d = decode_stream(golden("stream_vllm_reasoning_and_whole_tool_call")["chunks"])
    assert events == [
        StreamStart("chatcmpl-9f2c", "Qwen/Qwen3-32B", 1750000000),
        ThinkingDelta("User wants the time"), ThinkingDelta(" in Oslo."),
        ToolCallStart(0, "chatcmpl-tool-6a1e", "get_time"),
        ToolCallDelta(0, '{"city": "Oslo"}'),
        Finish("tool_calls"),
    ]
    assert d.finished


def chunk(delta=None, finish=None, **kw) -> dict:
    c = {"id": "s", "model": "m", "created": 1, "choices": [
        {"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    return {**c, **kw}


def test_azure_prompt_filter_chunk_does_not_start_the_stream():
    azure_head = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                  "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
    events, _ = decode_stream([azure_head, chunk({"role": "assistant", "content": "x"})])
    assert events == [StreamStart("s", "m", 1), TextDelta("x")]


def test_cut_stream_is_not_finished():
    events, d = decode_stream([chunk({"content": "par"})])
    assert events == [StreamStart("s", "m", 1), TextDelta("par")]
    assert not d.finished


def test_tool_calls_without_index_or_with_reused_index():
    events, _ = decode_stream([
        chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{"}}]}),
        chunk({"tool_calls": [{"function": {"arguments": "}"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "[]"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "b", "function": {"arguments": "!"}}]}),
    ])
    assert events[1:] == [ToolCallStart(0, "a", "f"), ToolCallDelta(0, "{"), ToolCallDelta(0, "}"),
                          ToolCallStart(1, "b", "g"), ToolCallDelta(1, "[]"), ToolCallDelta(1, "!")]


@pytest.mark.parametrize("chunks", [
    ["data"],
    [chunk(), chunk({"content": 1})],
    [chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})],
    [chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": "{}"}}]})],
    [chunk({"tool_calls": [{"index": -1, "id": "a", "function": {"name": "f"}}]})],
    [chunk(finish="stop"), chunk({"content": "late"})],
    [chunk(finish="mystery")],
    [chunk(), {"choices": [], "usage": {"prompt_tokens": "1", "completion_tokens": 1}}],
    [{"choices": {}}],
    [{"id": 1}],
])
def test_malformed_chunks(chunks):
    d = StreamDecoder()
    with pytest.raises(UpstreamProtocolError):
        for c in chunks:
            d.feed(c)


def test_error_chunk_is_an_upstream_error():
    d = StreamDecoder()
    d.feed(chunk({"content": "x"}))
    with pytest.raises(UpstreamError, match="rate"):
        d.feed({"error": {"message": "rate limit", "code": 429}})


def test_encoder_chunks_validate_and_follow_openai_shapes():
    enc = StreamEncoder("chatcmpl-gw", "public", 5, include_usage=True)
    events = [StreamStart("up", "upstream", 1), ThinkingDelta("t"), TextDelta("hi"),
              ToolCallStart(0, "c", "f"), ToolCallDelta(0, "{}"), Finish("tool_calls"),
              UsageEvent(Usage(3, 4, 1, 2))]
    chunks = [c for ev in events for c in enc.encode(ev)]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
        assert (c["id"], c["model"], c["created"]) == ("chatcmpl-gw", "public", 5)
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas[:5] == [
        {"role": "assistant", "content": ""}, {"reasoning_content": "t"}, {"content": "hi"},
        {"tool_calls": [{"index": 0, "id": "c", "type": "function",
                         "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
    ]
    assert chunks[5]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls",
                                       "logprobs": None}
    assert chunks[6]["choices"] == [] and chunks[6]["usage"]["total_tokens"] == 7
    assert all(c["usage"] is None for c in chunks[:6])


def test_encoder_without_include_usage_drops_usage():
    enc = StreamEncoder("i", "m", 0, include_usage=False)
    assert enc.encode(UsageEvent(Usage(1, 1))) == []
    assert "usage" not in enc.encode(TextDelta("x"))[0]
    assert enc.usage_chunk(Usage(1, 2))["usage"]["completion_tokens"] == 2
    ChatCompletionChunk.model_validate(enc.usage_chunk(Usage(1, 2)))


@settings(max_examples=300, deadline=None)
@given(responses())
def test_stream_round_trip(resp):
    enc = StreamEncoder(resp.id, resp.model, resp.created, include_usage=True)
    chunks = [wire(c) for ev in response_events(resp) for c in enc.encode(ev)]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    events, d = decode_stream(chunks)
    assert d.finished
    assert collect_stream(events) == as_decoded(resp)


def test_codecs_stay_pure():
    import ast
    import gateway.codecs.openai_chat as chat
    import gateway.codecs.sse as sse
    for module in (chat, sse):
        tree = ast.parse(Path(module.__file__).read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not roots & {"trio", "httpx", "quart", "quart_trio", "peewee", "hypercorn"}, module
