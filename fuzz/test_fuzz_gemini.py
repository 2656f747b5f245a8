"""Fuzz the Gemini decoders and the schema validator with valid-ish shapes mixed with garbage.

Allowed outcomes: a canonical value (or a normalised schema), a ClientError from the
client-side decoders, an UpstreamError from the upstream-side ones. Anything else is a
codec bug. What decodes is pushed back through the encoders: requests must reach a fixed
point after one trip through the upstream encoder, client responses and chunks must
parse with google-genai's own types, and the stream encoder's output must decode back
to the events it was given.
"""
from __future__ import annotations

import json

from google.genai import types as gtypes
from hypothesis import given, settings, strategies as st

from gateway.canonical import (
    Finish, Request, Response, StreamStart, TextDelta, ThinkingDelta, ThinkingPart, ToolCallDelta,
    ToolCallStart, Usage, UsageEvent, collect_stream,
)
from gateway.codecs.gemini import (
    check_route, from_canonical_request, from_canonical_response, to_canonical_request,
    to_canonical_response,
)
from gateway.codecs.gemini import StreamDecoder, StreamEncoder
from gateway.codecs.schema import normalize_tool_schema, validate_response_schema
from gateway.errors import ClientError, UpstreamError

FUZZ = settings(max_examples=300, deadline=None)

keys = st.sampled_from([
    "text", "role", "parts", "name", "id", "args", "response", "type", "properties", "required",
    "items", "enum", "nullable", "anyOf", "$ref", "$defs", "candidates", "content", "thought",
    "thoughtSignature", "functionCall", "finishReason", "usageMetadata", "mimeType", "data",
]) | st.text(max_size=6)
leaves = (st.none() | st.booleans() | st.integers(-3, 1 << 64) | st.floats(allow_nan=False)
          | st.text(max_size=10) | st.sampled_from(["", "OBJECT", "string", "STOP", "image/png", "#"]))
garbage = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(keys, inner, max_size=4), max_leaves=16)
words = st.text(min_size=1, max_size=6)
b64 = st.sampled_from(["c2ln", "CiQBgolden==", "EqQB", "not base64!", "", "0"]) | st.text(max_size=6)
nums = st.integers(-2, 50) | st.floats(-3, 3) | st.booleans()


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Usually the valid shape, now and then anything at all."""
    return st.integers(0, 24).flatmap(lambda roll: garbage if roll == 0 else valid)


def obj(required: dict, optional: dict | None = None) -> st.SearchStrategy:
    return maybe(st.fixed_dictionaries({k: maybe(v) for k, v in required.items()},
                                       optional={k: maybe(v) for k, v in (optional or {}).items()}))


# ---------------------------------------------------------------- schemas

type_names = st.sampled_from(["OBJECT", "object", "STRING", "string", "INTEGER", "NUMBER", "BOOLEAN",
                              "ARRAY", "array", "NULL", "TYPE_UNSPECIFIED", "strng"])
schema = st.recursive(
    obj({}, {"type": type_names | st.lists(type_names, max_size=3), "nullable": st.booleans(),
             "enum": st.lists(leaves, max_size=3), "description": words,
             "minItems": st.integers(-1, 5) | st.just("3"), "maxItems": st.integers(0, 5),
             "format": words, "example": garbage}),
    lambda inner: obj({}, {
        "type": type_names, "properties": st.dictionaries(words, inner, max_size=3),
        "required": st.lists(words, max_size=3), "items": inner, "anyOf": st.lists(inner, max_size=2),
        "propertyOrdering": st.lists(words, max_size=3), "$defs": st.dictionaries(words, inner, max_size=2),
        "$ref": st.sampled_from(["#", "#/$defs/a", "#/properties/x", "http://x", "#/nope"]),
        "additionalProperties": st.booleans() | inner, "nullable": st.booleans()}),
    max_leaves=12)


@FUZZ
@given(schema)
def test_fuzz_schema_validator(raw):
    for check in (validate_response_schema, normalize_tool_schema):
        try:
            out = check(raw, field="f")
        except ClientError:
            continue
        assert isinstance(out, dict)
        assert check(json.loads(json.dumps(out)), field="f") == out  # idempotent


# ---------------------------------------------------------------- client requests

fn_call = obj({"name": words}, {"args": st.dictionaries(words, leaves, max_size=2), "id": words})
fn_response = obj({"name": words}, {"response": st.dictionaries(words, leaves, max_size=2), "id": words})
part = st.one_of(
    obj({"text": st.text(max_size=8)}, {"thought": st.booleans(), "thoughtSignature": b64}),
    obj({"inlineData": obj({"mimeType": st.sampled_from(["image/png", "application/pdf"]), "data": b64})}),
    obj({"file_data": obj({"file_uri": st.sampled_from(["https://x/a.png", "https://x/v"])},
                          {"mime_type": st.sampled_from(["image/jpeg", "video/mp4"])})}),
    obj({"functionCall": fn_call}, {"thoughtSignature": b64}),
    obj({"functionResponse": fn_response}),
    obj({"executableCode": obj({"code": words}, {"language": st.just("PYTHON")})}),
    obj({"thoughtSignature": b64}),
)
content = obj({"parts": st.lists(part, min_size=1, max_size=3)},
              {"role": st.sampled_from(["user", "model", "model", "function", "system"])})
declaration = obj({"name": words}, {"description": words, "parameters": schema,
                                    "parametersJsonSchema": schema})
tool = obj({}, {"functionDeclarations": st.lists(declaration, max_size=2), "googleSearch": st.just({}),
                "code_execution": st.just({})})
generation = obj({}, {
    "maxOutputTokens": nums, "temperature": nums, "topP": nums, "topK": nums | st.just(40.0),
    "candidateCount": nums, "stopSequences": st.lists(st.text(max_size=3), max_size=6),
    "seed": nums, "presencePenalty": nums, "frequencyPenalty": nums,
    "responseMimeType": st.sampled_from(["application/json", "text/plain", "text/x.enum", ""]),
    "responseSchema": schema, "responseJsonSchema": schema, "thinkingConfig": garbage,
    "responseModalities": st.lists(st.sampled_from(["TEXT", "IMAGE"]), max_size=2)})
request_body = obj(
    {"contents": st.lists(content, min_size=1, max_size=4)},
    {"systemInstruction": obj({"parts": st.lists(obj({"text": st.text(max_size=5)}), max_size=2)}),
     "tools": st.lists(tool, max_size=2),
     "toolConfig": obj({"functionCallingConfig": obj({}, {
         "mode": st.sampled_from(["AUTO", "ANY", "NONE", "any", "X"]),
         "allowedFunctionNames": st.lists(words, max_size=2)})}),
     "generationConfig": generation, "safetySettings": garbage, "stream": st.booleans(),
     "cachedContent": st.just("cachedContents/x"), "labels": garbage},
)


@FUZZ
@given(st.one_of(request_body, request_body, request_body, garbage), st.booleans())
def test_fuzz_to_canonical_request(raw, stream):
    try:
        req = to_canonical_request(raw, model="m", stream=stream)
    except ClientError:
        return
    assert isinstance(req, Request)
    for kind in ("openai", "anthropic", "gemini"):
        try:
            check_route(req, kind)
        except ClientError:
            pass
    # Whatever we accept we can send upstream, and one trip reaches a fixed point.
    once = to_canonical_request(json.loads(json.dumps(from_canonical_request(req, "x"))),
                                model="m", stream=stream)
    twice = to_canonical_request(json.loads(json.dumps(from_canonical_request(once, "x"))),
                                 model="m", stream=stream)
    assert once == twice


# ---------------------------------------------------------------- upstream responses and chunks

counts = st.integers(-1, 1 << 40)
usage_md = obj({}, {"promptTokenCount": counts, "candidatesTokenCount": counts,
                    "thoughtsTokenCount": counts, "cachedContentTokenCount": counts,
                    "toolUsePromptTokenCount": counts, "totalTokenCount": counts})
finish = st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "MALFORMED_FUNCTION_CALL", "NEW_ONE"])
candidate = obj({}, {"content": obj({"parts": st.lists(part, max_size=3)}, {"role": st.just("model")}),
                     "finishReason": finish, "index": st.just(0) | nums})
response_body = obj({}, {"candidates": st.lists(candidate, max_size=2), "usageMetadata": usage_md,
                         "promptFeedback": obj({"blockReason": st.sampled_from(["SAFETY", "OTHER"])}),
                         "modelVersion": words, "responseId": words})
error_body = st.fixed_dictionaries({"error": garbage})


@FUZZ
@given(st.one_of(response_body, response_body, error_body, garbage))
def test_fuzz_to_canonical_response(raw):
    try:
        resp = to_canonical_response(raw)
    except UpstreamError:
        return
    assert isinstance(resp, Response)
    gtypes.GenerateContentResponse.model_validate(json.loads(json.dumps(from_canonical_response(resp, "p"))))


@FUZZ
@given(st.lists(st.one_of(response_body, response_body, response_body, error_body, garbage), max_size=6))
def test_fuzz_stream_decoder(chunks):
    d = StreamDecoder()
    events: list = []
    try:
        for ch in chunks:
            events += d.feed(ch)
    except UpstreamError:
        pass
    events += d.close()
    assert_well_formed(events)
    collect_stream(events)
    enc = StreamEncoder("id", "public")
    out = [c for ev in events for c in enc.encode(ev)] + enc.end()
    for c in out:
        gtypes.GenerateContentResponse.model_validate(json.loads(json.dumps(c)))


def assert_well_formed(events: list) -> None:
    """The stream grammar canonical.py promises, checked on whatever we emitted."""
    if not events:
        return
    assert isinstance(events[0], StreamStart)
    started: set[int] = set()
    finished = False
    for ev in events[1:]:
        assert not isinstance(ev, StreamStart)
        if isinstance(ev, (TextDelta, ThinkingDelta, ToolCallStart, ToolCallDelta)):
            assert not finished, "content after Finish"
        if isinstance(ev, ToolCallStart):
            assert ev.index == len(started)
            started.add(ev.index)
        elif isinstance(ev, ToolCallDelta):
            assert ev.index in started
        elif isinstance(ev, Finish):
            assert not finished
            finished = True


# ---------------------------------------------------------------- encoder -> decoder

arg_objects = st.dictionaries(st.text("abc", min_size=1, max_size=3), st.integers() | st.text(max_size=4),
                              max_size=3)
content_events = st.lists(st.one_of(
    st.text(min_size=1, max_size=6).map(lambda t: ("text", t)),
    st.tuples(st.text(max_size=6), st.sampled_from([None, "c2ln", "EqQBCg=="])).map(lambda t: ("think", t)),
    st.tuples(st.sampled_from(["f", "g"]), arg_objects, st.integers(1, 3)).map(lambda t: ("call", t)),
), max_size=8)
usages = st.builds(lambda i, o, r: Usage(i, o + r, 0, r), st.integers(0, 10**6), st.integers(0, 10**6),
                   st.integers(0, 10**6))


def _events(spec: list, reason: str, usage: Usage | None, usage_first: bool) -> list:
    evs: list = [StreamStart("r", "m")]
    n = 0
    for kind, value in spec:
        if kind == "text":
            evs.append(TextDelta(value))
        elif kind == "think":
            if value[0] or value[1]:
                evs.append(ThinkingDelta(*value))
        else:
            name, args, pieces = value
            text = json.dumps(args, ensure_ascii=False, separators=(",", ":"))
            step = max(1, len(text) // pieces)
            evs.append(ToolCallStart(n, f"call_{n}", name))
            evs += [ToolCallDelta(n, text[i:i + step]) for i in range(0, len(text), step)]
            n += 1
    tail = [Finish(reason)] + ([UsageEvent(usage)] if usage else [])
    return evs + (tail[::-1] if usage_first else tail)


def unsigned(parts) -> list:
    return [ThinkingPart(p.text) if isinstance(p, ThinkingPart) else p for p in parts]


def signatures(events) -> list[str]:
    return sorted(e.signature for e in events if isinstance(e, ThinkingDelta) and e.signature)


@FUZZ
@given(content_events, st.sampled_from(["stop", "length", "content_filter"]), st.none() | usages,
       st.booleans())
def test_fuzz_encoder_decoder_round_trip(spec, reason, usage, usage_first):
    events = _events(spec, reason, usage, usage_first)
    enc = StreamEncoder("r", "m")
    chunks = [c for ev in events for c in enc.encode(ev)] + enc.end()
    back, d = [], StreamDecoder()
    for c in json.loads(json.dumps(chunks)):
        gtypes.GenerateContentResponse.model_validate(c)
        back += d.feed(c)
    back += d.close()
    assert d.finished
    want, got = collect_stream(events), collect_stream(back)
    # Calls are held to the end while thoughts stream at once, and collect_stream keeps
    # one signature: compare parts without it, and every signature on its own.
    assert unsigned(got.message.parts) == unsigned(want.message.parts)
    assert signatures(back) == signatures(events)
    assert got.usage == usage
    calls = any(isinstance(e, ToolCallStart) for e in events)
    assert got.finish_reason == ("tool_calls" if calls and reason == "stop" else reason)
