"""Fuzz the Anthropic Messages decoders with valid-ish shapes mixed with garbage.

Allowed outcomes: a canonical value, a ClientError from the client-side decoder, an
UpstreamError from the upstream-side decoders. Anything else is a codec bug. Values
that do decode are pushed back through the encoders as a cross-check: requests reach a
fixed point, responses validate with the SDK's types, and a stream re-encoded for a
client follows Anthropic's event grammar and decodes to the same Response.
"""
from __future__ import annotations

import dataclasses
import itertools
import json

import anthropic.types as at
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.canonical import (
    Finish,
    Request,
    Response,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageEvent,
    collect_stream,
)
from gateway.codecs.anthropic import (
    from_canonical_request,
    from_canonical_response,
    to_canonical_request,
    to_canonical_response,
)
from gateway.codecs.anthropic import StreamDecoder, StreamEncoder
from gateway.errors import ClientError, UpstreamError

FUZZ = settings(max_examples=300, deadline=None)

keys = st.sampled_from(["type", "text", "content", "role", "id", "name", "input", "source", "data",
                        "index", "delta", "message", "usage", "stop_reason", "signature",
                        "thinking", "cache_control", "partial_json"]) | st.text(max_size=6)
leaves = (st.none() | st.booleans() | st.integers(-3, 1 << 64) | st.floats(allow_nan=False)
          | st.text(max_size=10) | st.sampled_from(["", "text", "tool_use", "base64", "ephemeral"]))
garbage = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(keys, inner, max_size=4), max_leaves=16)
words = st.text(min_size=1, max_size=6)
schema = st.dictionaries(keys, garbage, max_size=3)
posint = st.integers(1, 1000)
unit = st.floats(0, 1)
nums = st.integers(-2, 5) | st.floats(-3, 3) | st.booleans()


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Usually the valid shape, now and then anything at all."""
    return st.integers(0, 24).flatmap(lambda roll: garbage if roll == 0 else valid)


def mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """One draw in ten from the shapes the decoder must refuse."""
    return st.integers(0, 9).flatmap(lambda roll: invalid if roll == 0 else valid)


def obj(required: dict, optional: dict | None = None) -> st.SearchStrategy:
    return maybe(st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                       optional={k: maybe(v) for k, v in (optional or {}).items()}))


cache = {"cache_control": st.just({"type": "ephemeral"}) | st.none()}
image_source = mostly(st.one_of(
    obj({"type": st.just("base64"), "media_type": st.sampled_from(["image/png", "image/jpeg"]), "data": words}),
    obj({"type": st.just("url"), "url": words})),
    obj({"type": st.just("file"), "file_id": words}))
doc_source = mostly(st.one_of(
    obj({"type": st.just("text"), "media_type": st.just("text/plain"), "data": st.text(max_size=8)}),
    obj({"type": st.just("content"), "content": st.text(max_size=8) | st.lists(
        obj({"type": st.just("text"), "text": st.text(max_size=6)}), max_size=2)})),
    obj({"type": st.just("base64"), "media_type": st.just("application/pdf"), "data": words}))
text_block = obj({"type": st.just("text"), "text": st.text(max_size=8)}, cache)
image_block = obj({"type": st.just("image"), "source": image_source}, cache)
doc_block = obj({"type": st.just("document"), "source": doc_source}, {"title": words, **cache})
result_block = obj({"type": st.just("tool_result"), "tool_use_id": words},
                   {"content": st.text(max_size=6) | st.lists(text_block | image_block | doc_block, max_size=2),
                    "is_error": st.booleans(), **cache})
use_block = obj({"type": st.just("tool_use"), "id": words, "name": words, "input": schema}, cache)
thinking_block = obj({"type": st.just("thinking"), "thinking": st.text(max_size=8)},
                     {"signature": st.text(max_size=6)})
redacted_block = obj({"type": st.just("redacted_thinking"), "data": st.text(max_size=6)})
odd_block = obj({"type": st.sampled_from(["server_tool_use", "search_result", "x"])})
user_content = st.text(max_size=8) | st.lists(
    mostly(st.one_of(text_block, image_block, doc_block, result_block), odd_block), max_size=3)
assistant_content = st.text(max_size=8) | st.lists(
    mostly(st.one_of(text_block, use_block, thinking_block, redacted_block), odd_block), max_size=3)
message = mostly(st.one_of(
    obj({"role": st.just("user"), "content": user_content}),
    obj({"role": st.just("assistant"), "content": assistant_content})),
    obj({"role": st.sampled_from(["user", "assistant", "system", "tool"]), "content": user_content}))
tool = obj({"name": words, "input_schema": schema},
           {"description": words, "type": mostly(st.just("custom"), st.just("web_search_20250305")),
            **cache})
request_body = obj(
    {"model": words, "max_tokens": mostly(posint, nums), "messages": st.lists(message, min_size=1, max_size=4)},
    {"system": st.text(max_size=8) | st.lists(text_block, max_size=2),
     "tools": st.lists(tool, max_size=3),
     "tool_choice": obj({"type": mostly(st.sampled_from(["auto", "any", "tool", "none"]), st.just("required"))},
                        {"name": words, "disable_parallel_tool_use": st.booleans()}),
     "temperature": mostly(unit, nums), "top_p": unit, "top_k": mostly(st.integers(0, 100), nums),
     "stop_sequences": st.lists(st.text(max_size=3), max_size=3),
     "metadata": obj({}, {"user_id": words}), "stream": st.booleans(),
     "thinking": obj({"type": st.sampled_from(["enabled", "disabled", "adaptive"])},
                     {"budget_tokens": posint}),
     "output_config": obj({}, {"effort": st.sampled_from(["low", "high"]),
                               "format": obj({"type": st.just("json_schema"), "schema": schema})}),
     "cache_control": st.just({"type": "ephemeral"}), "service_tier": garbage,
     "mcp_servers": mostly(st.none(), garbage)},
)

counts = st.integers(-1, 1 << 40)
usage = obj({"input_tokens": counts, "output_tokens": counts},
            {"cache_read_input_tokens": counts | st.none(), "cache_creation_input_tokens": counts | st.none()})
stop_reason = st.none() | st.sampled_from(["end_turn", "max_tokens", "stop_sequence", "tool_use",
                                           "refusal", "pause_turn", "weird"])
response_body = obj(
    {"id": words, "model": words, "content": st.lists(
        st.one_of(obj({"type": st.just("text"), "text": st.text(max_size=8)}), use_block,
                  thinking_block, redacted_block, odd_block), max_size=3)},
    {"type": st.just("message"), "stop_reason": stop_reason, "usage": usage},
)
error_body = st.fixed_dictionaries({"type": st.just("error"), "error": garbage})

index = st.integers(0, 3) | nums
block_start = obj({"type": st.just("content_block_start"), "index": index, "content_block": st.one_of(
    obj({"type": st.just("text"), "text": st.text(max_size=4)}),
    obj({"type": st.just("tool_use"), "id": words, "name": words, "input": st.just({}) | schema}),
    obj({"type": st.just("thinking"), "thinking": st.text(max_size=4)}, {"signature": st.text(max_size=4)}),
    redacted_block, odd_block)})
block_delta = obj({"type": st.just("content_block_delta"), "index": index, "delta": st.one_of(
    obj({"type": st.just("text_delta"), "text": st.text(max_size=6)}),
    obj({"type": st.just("input_json_delta"), "partial_json": st.text(max_size=6)}),
    obj({"type": st.just("thinking_delta"), "thinking": st.text(max_size=6)}),
    obj({"type": st.just("signature_delta"), "signature": st.text(max_size=6)}),
    obj({"type": st.just("citations_delta")}))})
stream_event = st.one_of(
    obj({"type": st.just("message_start"), "message": obj({"id": words, "model": words}, {"usage": usage})}),
    block_start, block_start, block_delta, block_delta, block_delta,
    obj({"type": st.just("content_block_stop"), "index": index}),
    obj({"type": st.just("message_delta"), "delta": obj({}, {"stop_reason": stop_reason})},
        {"usage": obj({"output_tokens": counts}, {"input_tokens": counts})}),
    obj({"type": st.sampled_from(["message_stop", "ping", "future"])}),
)
@st.composite
def whole_stream(draw) -> list:
    """A well-formed upstream stream: the shape a real Anthropic response has."""
    def delta(i: int, d: dict) -> dict:
        return {"type": "content_block_delta", "index": i, "delta": d}

    out = [{"type": "message_start", "message": {
        "id": draw(words), "model": draw(words), "type": "message", "role": "assistant", "content": [],
        "usage": {"input_tokens": draw(st.integers(0, 500)), "output_tokens": 1,
                  "cache_read_input_tokens": draw(st.integers(0, 500) | st.none())}}}]
    if draw(st.booleans()):
        out.append({"type": "ping"})
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["text", "tool_use", "thinking", "redacted_thinking", "server_tool_use"]))
        block: dict = {"type": kind}
        if kind == "text":
            block["text"] = ""
        elif kind == "tool_use" or kind == "server_tool_use":
            block.update(id=draw(words), name=draw(words), input={})
        elif kind == "thinking":
            block.update(thinking="", signature="")
        else:
            block["data"] = draw(words)
        out.append({"type": "content_block_start", "index": i, "content_block": block})
        if kind == "text":
            out += [delta(i, {"type": "text_delta", "text": t}) for t in draw(st.lists(words, max_size=3))]
        elif kind == "tool_use":
            args = json.dumps(draw(st.dictionaries(words, st.integers() | words, max_size=3)))
            cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
            bounds = [0, *cuts, len(args)]
            out += [delta(i, {"type": "input_json_delta", "partial_json": args[a:b]})
                    for a, b in itertools.pairwise(bounds)]
        elif kind == "thinking":
            out += [delta(i, {"type": "thinking_delta", "thinking": t}) for t in draw(st.lists(words, max_size=3))]
            out.append(delta(i, {"type": "signature_delta", "signature": draw(words)}))
        out.append({"type": "content_block_stop", "index": i})
    out.append({"type": "message_delta", "delta": {"stop_reason": draw(stop_reason), "stop_sequence": None},
                "usage": {"output_tokens": draw(st.integers(0, 500))}})
    out.append({"type": "message_stop"})
    return out


@st.composite
def damaged_stream(draw) -> list:
    """A whole stream with one event replaced, removed, or the tail cut off."""
    events = draw(whole_stream())
    at_ = draw(st.integers(0, len(events) - 1))
    how = draw(st.sampled_from(["replace", "drop", "cut"]))
    if how == "replace":
        events[at_] = draw(st.one_of(stream_event, error_body, garbage))
    elif how == "drop":
        del events[at_]
    else:
        del events[at_:]
    return events


_EVENT_TYPES = {
    "message_start": at.RawMessageStartEvent, "content_block_start": at.RawContentBlockStartEvent,
    "content_block_delta": at.RawContentBlockDeltaEvent,
    "content_block_stop": at.RawContentBlockStopEvent, "message_delta": at.RawMessageDeltaEvent,
    "message_stop": at.RawMessageStopEvent,
}


@FUZZ
@given(st.one_of(request_body, request_body, request_body, garbage))
def test_fuzz_to_canonical_request(raw):
    try:
        req = to_canonical_request(raw)
    except ClientError:
        return
    assert isinstance(req, Request)
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
    out = from_canonical_response(resp, "public")
    at.Message.model_validate(out)
    # cache_creation is folded into input_tokens and a missing usage goes out as zeros
    # (the SDK requires one), so the canonical value is what must survive.
    again = to_canonical_response(json.loads(json.dumps(out)))
    assert again == dataclasses.replace(resp, model="public", usage=resp.usage or Usage())


@FUZZ
@given(st.one_of(whole_stream(), damaged_stream(), damaged_stream(),
                 st.lists(st.one_of(stream_event, stream_event, error_body, garbage), max_size=10)))
def test_fuzz_stream_decoder(raw_events):
    d = StreamDecoder()
    events = []
    failed = False
    try:
        for e in raw_events:
            events += d.feed(e)
    except UpstreamError:
        failed = True
    events += d.close()
    assert_well_formed(events)
    collect_stream(events)
    if not events:
        return
    enc = StreamEncoder("msg_1", "public", 5)
    frames = [f for ev in events for f in enc.encode(ev)] + enc.close()
    assert_anthropic_grammar(frames, accumulate=all(
        _json_object(c.arguments) for c in collect_stream(events).message.tool_calls))
    if not failed and d.finished:
        again = StreamDecoder()
        decoded = [ev for _, data in frames for ev in again.feed(json.loads(json.dumps(data)))]
        assert again.finished
        assert collect_stream(decoded) == dataclasses.replace(collect_stream(events), id="msg_1",
                                                              model="public")


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


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def assert_anthropic_grammar(frames: list, accumulate: bool) -> None:
    """message_start, ping, sequential blocks, message_delta, message_stop; SDK-valid.

    The SDK's accumulator itself raises on tool input that is not JSON (as it would
    against Anthropic), so it only runs when the arguments relayed are whole objects.
    """
    names = [n for n, _ in frames]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for name, data in frames[2:-2]:
        assert name == data["type"]
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        else:
            assert name == "content_block_delta" and data["index"] < next_index
    snapshot, bufs = None, {}
    for name, data in frames:
        if name == "ping":
            continue
        data = json.loads(json.dumps(data))
        if name == "message_delta" and "usage" not in data:
            data["usage"] = {"output_tokens": 0}   # our no-usage case; the SDK requires the key
        event = _EVENT_TYPES[name].model_validate(data)
        if accumulate:
            snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
