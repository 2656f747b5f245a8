"""Fuzz the OpenAI Responses and legacy Completions decoders, and the Responses stream
encoder, with valid-ish shapes mixed with garbage.

Allowed outcomes for a decoder: a canonical Request or a ClientError. What decodes is
cross-checked: its stored conversation replays to the same messages, and the echo of
its settings makes a Response object the official SDK accepts. The stream encoder,
fed any well-formed canonical event sequence, must emit events the SDK validates and
accumulates, numbered from 0 upwards.
"""
from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types import Completion
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.canonical import (
    Finish, Message, Request, Response, StreamStart, TextDelta, TextPart, ThinkingDelta,
    ToolCallDelta, ToolCallStart, Usage, UsageEvent,
)
from gateway.codecs import openai_completions, openai_responses
from gateway.codecs.openai_responses_stream import StreamEncoder
from gateway.errors import ClientError

FUZZ = settings(max_examples=300, deadline=None)
EVENT = TypeAdapter(ResponseStreamEvent)

keys = st.sampled_from(["type", "text", "content", "role", "name", "call_id", "arguments",
                        "output", "image_url", "file_id", "summary", "format", "schema",
                        "id", "detail"]) | st.text(max_size=6)
leaves = (st.none() | st.booleans() | st.integers(-3, 1 << 64) | st.floats(allow_nan=False)
          | st.text(max_size=10) | st.sampled_from(["", "function", "message", "input_text",
                                                    "data:image/png;base64,"]))
garbage = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(keys, inner, max_size=4), max_leaves=16)
words = st.text(min_size=1, max_size=6)
unit = st.floats(0, 1)
nums = st.integers(-2, 5) | st.floats(-3, 3) | st.booleans()


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Usually the valid shape, now and then anything at all."""
    return st.integers(0, 24).flatmap(lambda roll: garbage if roll == 0 else valid)


def kind(*values: str) -> st.SearchStrategy:
    """A discriminator: mostly one of ``values``, often enough anything (lists, objects)
    that type checks on it are exercised, not just reached."""
    return st.one_of(st.sampled_from(values), st.sampled_from(values), garbage)


def obj(required: dict, optional: dict | None = None) -> st.SearchStrategy:
    return maybe(st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                       optional={k: maybe(v) for k, v in (optional or {}).items()}))


text_part = obj({"type": kind("input_text", "output_text", "refusal"),
                 "text": st.text(max_size=8)}, {"refusal": words})
image_part = obj({"type": st.just("input_image")},
                 {"image_url": words | st.builds("data:{};base64,{}".format, words, words),
                  "file_id": st.none() | words,
                  "detail": kind("auto", "low", "high", "original", "max")})
other_part = obj({"type": st.sampled_from(["input_file", "input_audio", "x"])})
part = st.one_of(text_part, text_part, image_part, other_part)
content = st.text(max_size=8) | st.lists(part, max_size=3)
summary = st.lists(obj({"type": st.just("summary_text"), "text": st.text(max_size=6)}), max_size=2)
item = st.one_of(
    obj({"role": kind("user", "system", "developer", "assistant", "tool"),
         "content": content}, {"type": st.just("message")}),
    obj({"type": st.just("function_call"), "call_id": words, "name": words,
         "arguments": st.text(max_size=8)}, {"id": words, "status": st.just("completed")}),
    obj({"type": st.just("function_call_output"), "call_id": words,
         "output": st.text(max_size=8) | st.lists(part, max_size=2)}),
    obj({"type": st.just("reasoning"), "summary": summary},
        {"id": words, "encrypted_content": st.none() | words,
         "content": st.lists(obj({"type": st.just("reasoning_text"), "text": st.text(max_size=6)}),
                             max_size=2)}),
    obj({"type": kind("item_reference", "web_search_call", "x")}, {"id": words}),
)
tool = obj({"type": kind("function", "function", "web_search", "file_search"),
            "name": words},
           {"description": words, "parameters": st.dictionaries(keys, garbage, max_size=3),
            "strict": st.booleans()})
text_config = obj({}, {"format": obj({"type": kind("text", "json_object", "json_schema", "x")},
                                     {"name": words, "schema": st.dictionaries(keys, garbage,
                                                                              max_size=3),
                                      "strict": st.booleans(), "description": words}),
                       "verbosity": kind("low", "medium", "high", "loud")})
responses_body = obj(
    {"model": words, "input": st.text(max_size=8) | st.lists(item, max_size=5)},
    {"instructions": st.text(max_size=6), "tools": st.lists(tool, max_size=3),
     "tool_choice": kind("auto", "none", "required", "any")
     | obj({"type": kind("function"), "name": words}),
     "text": text_config, "max_output_tokens": st.integers(-1, 5000) | nums,
     "temperature": unit | nums, "top_p": unit, "parallel_tool_calls": st.booleans(),
     "stream": st.booleans(), "store": st.booleans(), "user": words,
     "metadata": st.dictionaries(st.text(max_size=70), st.text(max_size=8) | nums, max_size=3),
     "previous_response_id": st.none() | words,
     "reasoning": obj({}, {"effort": kind("low", "high", "extreme"),
                           "summary": kind("auto", "never")}),
     "truncation": kind("auto", "disabled", "never"),
     "include": st.lists(words, max_size=2), "background": st.booleans(),
     "conversation": st.none() | words},
)
completions_body = obj(
    {"model": words, "prompt": st.text(max_size=8) | st.lists(st.text(max_size=4) | nums,
                                                              max_size=3)},
    {"max_tokens": st.integers(-1, 100), "temperature": unit, "top_p": unit, "n": nums,
     "best_of": nums, "echo": st.booleans(), "suffix": st.none() | words, "stream": st.booleans(),
     "stream_options": obj({"include_usage": st.booleans()}), "logprobs": nums,
     "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=5),
     "seed": st.integers(), "user": words, "presence_penalty": unit},
)


@FUZZ
@given(st.one_of(responses_body, responses_body, responses_body, garbage))
def test_fuzz_responses_to_canonical_request(raw):
    try:
        req = openai_responses.to_canonical_request(raw)
    except ClientError:
        return
    assert isinstance(req, Request) and isinstance(raw, dict)
    # The conversation stored for chaining replays to the same messages after JSON.
    items = json.loads(json.dumps(openai_responses.input_items(raw)))
    prefix = 1 if raw.get("instructions") else 0
    assert openai_responses.history_messages(items) == req.messages[prefix:]
    # Whatever we accept, we can answer in a Response object the SDK takes.
    answer = Response("r", "m", Message("assistant", (TextPart("ok"),)), "stop", Usage(1, 1))
    SDKResponse.model_validate(openai_responses.from_canonical_response(
        answer, model=req.model, response_id="resp_1", created_at=0,
        request_echo=openai_responses.request_echo(raw)))


@FUZZ
@given(st.one_of(completions_body, completions_body, garbage))
def test_fuzz_completions_to_canonical_request(raw):
    try:
        req = openai_completions.to_canonical_request(raw)
    except ClientError:
        return
    assert isinstance(req, Request) and req.tools == () and len(req.messages) == 1
    answer = Response("r", "m", Message("assistant", (TextPart("ok"),)), "length", Usage(1, 1))
    Completion.model_validate(openai_completions.from_canonical_response(
        answer, id="cmpl-1", model=req.model, created=0,
        prefix=openai_completions.echo_prefix(raw, req)))


# ---------------------------------------------------------------- stream encoder

step = st.one_of(
    st.builds(TextDelta, st.text(max_size=5)),
    st.builds(ThinkingDelta, st.text(max_size=5), st.none() | words),
    st.just("start_call"),
    st.tuples(st.just("args"), st.integers(0, 3), st.text(max_size=5)),
    st.builds(UsageEvent, st.builds(Usage, st.integers(0, 99), st.integers(0, 99))),
)


@st.composite
def canonical_stream(draw) -> list:
    """A well-formed canonical stream: start, content with calls numbered in order,
    maybe a Finish, usage anywhere after the start."""
    events: list = [StreamStart("up", "up-model")]
    calls = 0
    for s in draw(st.lists(step, max_size=12)):
        if s == "start_call":
            events.append(ToolCallStart(calls, f"call_{calls}", "f"))
            calls += 1
        elif isinstance(s, tuple):
            if calls:
                events.append(ToolCallDelta(s[1] % calls, s[2]))
        else:
            events.append(s)
    if draw(st.booleans()):
        events.append(Finish(draw(st.sampled_from(["stop", "length", "tool_calls",
                                                   "content_filter", "error"]))))
    return events


@FUZZ
@given(canonical_stream(), st.booleans())
def test_fuzz_stream_encoder(events, fail):
    enc = StreamEncoder("resp_1", "m", 0, openai_responses.request_echo({"model": "m"}))
    out = [e for ev in events for e in enc.encode(ev)]
    out += enc.fail("provider_error", "gone") if fail else enc.finish(Usage(1, 1))
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for e in out:
        state.handle_event(EVENT.validate_python(e))
    SDKResponse.model_validate(enc.final)
    assert out[-1]["response"] == enc.final
