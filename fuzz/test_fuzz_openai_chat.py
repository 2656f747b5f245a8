"""Fuzz the OpenAI Chat Completions decoders with valid-ish shapes mixed with garbage.

Allowed outcomes: a canonical value, a ClientError from the client-side decoder, an
UpstreamError from the upstream-side decoders. Anything else is a codec bug. Values
that do decode are pushed back through the encoders as a cross-check.
"""
from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.canonical import (
    Finish, Request, Response, StreamStart, TextDelta, ThinkingDelta, ToolCallDelta,
    ToolCallStart, UsageEvent, collect_stream,
)
from gateway.codecs.openai_chat import StreamDecoder, StreamEncoder
from gateway.codecs.openai_chat import (
    from_canonical_request, from_canonical_response,
    to_canonical_request, to_canonical_response,
)
from gateway.errors import ClientError, UpstreamError

FUZZ = settings(max_examples=300, deadline=None)

keys = st.sampled_from(["type", "text", "content", "role", "name", "id", "index", "function",
                        "arguments", "url", "image_url", "delta", "message", "choices", "usage",
                        "finish_reason", "tool_calls", "schema"]) | st.text(max_size=6)
# No NaN: it is unequal to itself, which would fail the fixed-point check for no codec bug.
leaves = (st.none() | st.booleans() | st.integers(-3, 1 << 64) | st.floats(allow_nan=False)
          | st.text(max_size=10) | st.sampled_from(["", "function", "text", "data:image/png;base64,"]))
garbage = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(keys, inner, max_size=4), max_leaves=16)
words = st.text(min_size=1, max_size=6)
schema = st.dictionaries(keys, garbage, max_size=3)
posint = st.integers(1, 1000)
unit = st.floats(0, 1)
nums = st.integers(-2, 5) | st.floats(-3, 3) | st.booleans()  # for fields meant to be checked


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Usually the valid shape, now and then anything at all.

    Rare enough that whole bodies often come out valid and reach the deep branches.
    """
    return st.integers(0, 24).flatmap(lambda roll: garbage if roll == 0 else valid)


def obj(required: dict, optional: dict | None = None) -> st.SearchStrategy:
    return maybe(st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                       optional={k: maybe(v) for k, v in (optional or {}).items()}))


fn_call = obj({"name": words}, {"arguments": st.text(max_size=12) | st.none()})
tool_call = obj({"id": words, "function": fn_call},
                {"type": st.just("function"), "index": st.integers(0, 2) | nums})
image = obj({"url": words | st.builds("data:{};base64,{}".format, words, words)},
            {"detail": st.sampled_from(["auto", "low", "high", "max"])})
part = obj({"type": st.sampled_from(["text", "image_url", "refusal", "input_audio", "file"])},
           {"text": st.text(max_size=8), "image_url": image, "refusal": words})
content = st.none() | st.text(max_size=8) | st.lists(part, max_size=3)
text_parts = st.lists(obj({"type": st.just("text"), "text": st.text(max_size=8)}), max_size=2)
message = st.one_of(
    obj({"role": st.sampled_from(["system", "developer"]), "content": st.text(max_size=8) | text_parts}),
    obj({"role": st.just("user"), "content": st.text(max_size=8) | st.lists(part, max_size=3)},
        {"name": words}),
    obj({"role": st.just("assistant")},
        {"content": content, "name": words, "tool_calls": st.lists(tool_call, max_size=2)}),
    obj({"role": st.just("tool"), "tool_call_id": words, "content": st.text(max_size=8) | text_parts}),
    obj({"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "x"])},
        {"content": content, "name": words, "tool_calls": st.lists(tool_call, max_size=2),
         "tool_call_id": words, "function_call": fn_call}),
)
tool = obj({"type": st.just("function"),
            "function": obj({"name": words}, {"description": words, "parameters": schema,
                                              "strict": st.booleans()})})
request_body = obj(
    {"model": words, "messages": st.lists(message, min_size=1, max_size=4)},
    {"max_tokens": posint, "max_completion_tokens": posint, "temperature": unit, "top_p": unit,
     "n": st.just(1) | nums, "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=5),
     "tools": st.lists(tool, max_size=3),
     "tool_choice": st.sampled_from(["auto", "none", "required", "any"])
     | obj({"type": st.just("function"), "function": obj({"name": words})}),
     "parallel_tool_calls": st.booleans(), "stream": st.booleans(),
     "stream_options": obj({"include_usage": st.booleans()}),
     "response_format": obj({"type": st.sampled_from(["text", "json_object", "json_schema", "x"])},
                            {"json_schema": obj({"name": words, "schema": schema},
                                                {"strict": st.booleans()})}),
     "user": words, "seed": st.integers(), "frequency_penalty": unit, "presence_penalty": unit,
     "logprobs": garbage},
)
with_functions = st.builds(lambda b, f: {**b, "functions": f} if isinstance(b, dict) else b,
                           request_body, garbage)

counts = st.integers(-1, 1 << 40)
usage = obj({"prompt_tokens": counts, "completion_tokens": counts},
            {"total_tokens": counts, "prompt_tokens_details": obj({}, {"cached_tokens": counts}),
             "completion_tokens_details": obj({}, {"reasoning_tokens": counts})})
finish = st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter",
                                      "function_call", "error", "eos", "weird"])
head = {"id": words, "model": words, "created": st.integers(0, 1 << 40)}
response_body = obj(
    {**head, "choices": st.lists(obj(
        {"message": obj({"role": st.just("assistant")},
                        {"content": st.none() | st.text(max_size=8), "refusal": words,
                         "reasoning_content": words, "reasoning": words,
                         "tool_calls": st.lists(tool_call, max_size=3)}),
         "finish_reason": finish}), max_size=2)},
    {"usage": st.none() | usage},
)
delta = obj({}, {"role": st.just("assistant"), "content": st.none() | st.text(max_size=6),
                 "reasoning_content": words, "refusal": words,
                 "tool_calls": st.lists(tool_call, max_size=2)})
stream_chunk = obj(
    head,
    {"choices": st.lists(obj({"delta": delta}, {"index": st.just(0) | nums, "finish_reason": finish}),
                         max_size=2),
     "usage": st.none() | usage},
)
error_body = st.fixed_dictionaries({"error": garbage})


@FUZZ
@given(st.one_of(request_body, request_body, request_body, with_functions, garbage))
def test_fuzz_to_canonical_request(raw):
    try:
        req = to_canonical_request(raw)
    except ClientError:
        return
    assert isinstance(req, Request)
    # Whatever we accept we can send upstream, and what we send decodes to a fixed point.
    once = to_canonical_request(json.loads(json.dumps(from_canonical_request(req, req.model))))
    twice = to_canonical_request(json.loads(json.dumps(from_canonical_request(once, once.model))))
    assert once == twice


@FUZZ
@given(st.one_of(response_body, response_body, error_body, garbage))
def test_fuzz_to_canonical_response(raw):
    try:
        resp = to_canonical_response(raw)
    except UpstreamError:
        return
    assert isinstance(resp, Response)
    ChatCompletion.model_validate(from_canonical_response(resp, "public"))


@FUZZ
@given(st.lists(st.one_of(stream_chunk, stream_chunk, stream_chunk, error_body, garbage), max_size=8))
def test_fuzz_stream_decoder(chunks):
    d = StreamDecoder()
    events = []
    try:
        for c in chunks:
            events += d.feed(c)
    except UpstreamError:
        pass
    events += d.close()
    assert_well_formed(events)
    collect_stream(events)
    enc = StreamEncoder("id", "public", 0, include_usage=True)
    for ev in events:
        for c in enc.encode(ev):
            ChatCompletionChunk.model_validate(c)


def assert_well_formed(events: list) -> None:
    """The stream grammar canonical.py promises, checked on whatever we emitted."""
    if not events:
        return
    assert isinstance(events[0], StreamStart)
    assert not any(isinstance(e, StreamStart) for e in events[1:])
    started: set[int] = set()
    finished = False
    for ev in events[1:]:
        if isinstance(ev, (TextDelta, ThinkingDelta, ToolCallStart, ToolCallDelta)):
            assert not finished, "content after Finish"
        if isinstance(ev, ToolCallStart):
            assert ev.index == len(started), "tool calls are numbered in start order"
            started.add(ev.index)
        elif isinstance(ev, ToolCallDelta):
            assert ev.index in started
        elif isinstance(ev, Finish):
            assert not finished, "two Finish events"
            finished = True
        else:
            assert isinstance(ev, (TextDelta, ThinkingDelta, UsageEvent))
