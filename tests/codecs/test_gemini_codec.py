"""Gemini generateContent codec: requests, responses and streams in both directions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.genai import types as gtypes
from hypothesis import given, settings, strategies as st

from gateway.canonical import (
    Finish, ImagePart, Message, Request, Response, ResponseFormat, StreamStart, TextDelta,
    TextPart, ThinkingDelta, ThinkingPart, Tool, ToolCallDelta, ToolCallPart, ToolCallStart,
    ToolChoice, ToolResultPart, Usage, UsageEvent, collect_stream, response_events,
)
from gateway.codecs.gemini import (
    IGNORED_FIELDS, check_route, from_canonical_request, from_canonical_response,
    to_canonical_request, to_canonical_response, usable_routes,
)
from gateway.codecs.gemini import StreamDecoder, StreamEncoder
from gateway.errors import (
    InvalidRequest, InvalidResponseFormatSchema, UnsupportedGeminiFeature,
    UnsupportedResponseFormat, UpstreamError, UpstreamProtocolError,
)

GOLDEN = Path(__file__).parent / "golden" / "gemini"


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def wire(value):
    return json.loads(json.dumps(value))


def user(text: str) -> dict:
    return {"role": "user", "parts": [{"text": text}]}


def body(*contents: dict, **kw) -> dict:
    return {"contents": list(contents) or [user("hi")], **kw}


def decode(b: dict, *, stream: bool = False, model: str = "m") -> Request:
    return to_canonical_request(wire(b), model=model, stream=stream)


def decode_stream(chunks) -> tuple[list, StreamDecoder]:
    d = StreamDecoder()
    events = [ev for ch in chunks for ev in d.feed(ch)]
    return events + d.close(), d


def sdk_response(d: dict) -> gtypes.GenerateContentResponse:
    return gtypes.GenerateContentResponse.model_validate(wire(d))


# ---------------------------------------------------------------- client requests

def test_golden_agent_turn_request():
    req = decode(golden("request_agent_turn")["body"], model="pub")
    assert req.model == "pub" and not req.stream
    assert req.messages == (
        Message("system", (TextPart("You are terse."), TextPart("Answer in English."))),
        Message("user", (TextPart("What is in this picture, and what's the weather there?"),
                         ImagePart(data_b64="/9j/4AAQSkZJRg==", media_type="image/jpeg"))),
        Message("assistant", (ThinkingPart("", "CiQBgoldenAAAA"),
                              ToolCallPart("call_0", "get_weather", '{"city":"Paris"}'))),
        Message("user", (ToolResultPart("call_0", (TextPart('{"output":"18C, clear"}'),)),)),
    )
    assert req.tools == (Tool("get_weather", "Weather by city", {
        "type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"]}),)
    assert req.tool_choice == ToolChoice("auto")
    assert (req.max_tokens, req.temperature, req.top_p, req.top_k, req.stop) == (256, 0.2, 0.9, 40, ("END",))
    assert req.metadata == {
        "gemini_native": {"googleSearch": {}},
        "gemini_safety": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
        "openai_extra": {"presence_penalty": 0.5},
        "gemini_thinking": {"thinkingBudget": 1024, "includeThoughts": True},
    }


def test_golden_uppercase_response_schema():
    g = golden("request_response_schema_uppercase")
    req = decode(g["body"])
    assert req.response_format == ResponseFormat("json_schema", g["expected_schema"])
    # propertyOrdering became key order, which JSON keeps
    assert list(req.response_format.schema["items"]["properties"]) == \
        ["ingredients", "recipeName", "rating", "course"]


def test_minimal_request():
    assert decode(body()) == Request("m", (Message("user", (TextPart("hi"),)),))


def test_streaming_url_sets_stream_and_usage():
    req = decode(body(), stream=True)
    assert req.stream and req.include_usage


def test_stream_true_on_generate_content_is_refused():
    with pytest.raises(InvalidRequest) as exc:
        decode(body(stream=True))
    assert exc.value.field == "stream" and "streamGenerateContent" in exc.value.message
    assert decode(body(stream=True), stream=True).stream  # harmless where it is true anyway
    assert not decode(body(stream=False)).stream


def test_role_defaults_to_user_and_function_role_is_user():
    req = decode({"contents": [{"parts": [{"text": "a"}]},
                               {"role": "function", "parts": [{"functionResponse": {
                                   "name": "f", "response": {"x": 1}}}]}]})
    assert [m.role for m in req.messages] == ["user", "user"]


@pytest.mark.parametrize("bad, field", [
    ({"contents": []}, "contents"),
    ({"contents": "hi"}, "contents"),
    ({}, "contents"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
    ({"contents": [{"role": "user", "parts": []}]}, "contents[0].parts"),
    ({"contents": [{"role": "user", "parts": [{}]}]}, "contents[0].parts[0]"),
    ({"contents": [{"role": "user", "parts": [{"text": 3}]}]}, "contents[0].parts[0].text"),
    ({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]}, "contents[0].parts[0]"),
    ({"contents": [user("x")], "generationConfig": {"temperature": 3}}, "generationConfig.temperature"),
    ({"contents": [user("x")], "generationConfig": {"topP": -1}}, "generationConfig.topP"),
    ({"contents": [user("x")], "generationConfig": {"maxOutputTokens": 0}}, "generationConfig.maxOutputTokens"),
    ({"contents": [user("x")], "generationConfig": {"topK": 2.5}}, "generationConfig.topK"),
    ({"contents": [user("x")], "generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
    ({"contents": [user("x")], "generationConfig": {"stopSequences": ["a"] * 6}}, "generationConfig.stopSequences"),
    ({"contents": [user("x")], "generationConfig": {"seed": "1"}}, "generationConfig.seed"),
    ({"contents": [user("x")], "generationConfig": []}, "generationConfig"),
    ({"contents": [user("x")], "systemInstruction": {"parts": [{"inlineData": {}}]}}, "systemInstruction.parts[0]"),
    ({"contents": [user("x")], "tools": {}}, "tools"),
    ({"contents": [user("x")], "safetySettings": "none"}, "safetySettings"),
    ({"contents": [user("x")], "generationConfig": {"maxOutputTokens": 5, "max_output_tokens": 6}},
     "generationConfig.maxOutputTokens"),
])
def test_invalid_requests_name_the_field(bad, field):
    with pytest.raises(InvalidRequest) as exc:
        decode(bad)
    assert exc.value.field == field
    assert exc.value.message.startswith(field)


def test_function_parts_are_checked_by_turn():
    with pytest.raises(InvalidRequest, match="only in model turns"):
        decode(body({"role": "user", "parts": [{"functionCall": {"name": "f"}}]}))
    with pytest.raises(InvalidRequest, match="only in user turns"):
        decode(body({"role": "model", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}))
    with pytest.raises(InvalidRequest, match="args must be an object"):
        decode(body({"role": "model", "parts": [{"functionCall": {"name": "f", "args": [1]}}]}))


def test_non_image_media_is_an_unsupported_gemini_feature():
    for part in ({"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                 {"fileData": {"mimeType": "audio/mp3", "fileUri": "https://x/a.mp3"}},
                 {"fileData": {"fileUri": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}},
                 {"toolCall": {"toolType": "GOOGLE_SEARCH"}}):
        with pytest.raises(UnsupportedGeminiFeature) as exc:
            decode(body({"role": "user", "parts": [part]}))
        assert exc.value.message.startswith("unsupported_gemini_feature: contents[0].parts[0]")
        assert exc.value.code == "unsupported_gemini_feature" and exc.value.status == 400


def test_image_file_data_becomes_an_image_url():
    req = decode(body({"role": "user", "parts": [
        {"fileData": {"mimeType": "image/png", "fileUri": "https://x/files/abc"}},
        {"file_data": {"file_uri": "https://x/cat.JPG?sig=1"}}]}))
    assert req.messages[0].parts == (ImagePart(url="https://x/files/abc", media_type="image/png"),
                                     ImagePart(url="https://x/cat.JPG?sig=1", media_type="image/jpeg"))


def test_model_turn_thoughts_signatures_and_code_parts():
    req = decode(body(user("q"), {"role": "model", "parts": [
        {"text": "pondering", "thought": True, "thoughtSignature": "AAAA"},
        {"executableCode": {"language": "PYTHON", "code": "print(1)"}},
        {"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "1\n"}},
        {"text": "", "thoughtSignature": "BBBB"},
        {"text": "done"},
    ]}))
    assert req.messages[1].parts == (
        ThinkingPart("pondering", "AAAA"), TextPart("```python\nprint(1)\n```"), TextPart("1\n"),
        ThinkingPart("", "BBBB"), TextPart("done"))


def test_bytes_fields_must_be_base64_and_turns_must_hold_something():
    with pytest.raises(InvalidRequest) as exc:
        decode(body(user("q"), {"role": "model", "parts": [{"text": "a", "thoughtSignature": "no way!"}]}))
    assert exc.value.field == "contents[1].parts[0].thoughtSignature"
    with pytest.raises(InvalidRequest) as exc:
        decode(body({"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "0"}}]}))
    assert exc.value.field == "contents[0].parts[0].inlineData.data"
    with pytest.raises(InvalidRequest, match="holds no content"):
        decode({"contents": [{"role": "model", "parts": [{"text": ""}, {"text": "", "thought": True}]}]})


# ---------------------------------------------------------------- function-call ids

def test_ids_pair_responses_with_calls_by_name_in_order():
    req = decode(body(
        user("go"),
        {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {"n": 1}}},
                                    {"functionCall": {"name": "b"}},
                                    {"functionCall": {"name": "a", "args": {"n": 2}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "a", "response": {"r": 1}}},
                                   {"functionResponse": {"name": "a", "response": {"r": 2}}},
                                   {"functionResponse": {"name": "b", "response": {"error": "boom"}}}]}))
    calls = req.messages[1].tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_0", "a", '{"n":1}'), ("call_1", "b", "{}"), ("call_2", "a", '{"n":2}')]
    results = req.messages[2].parts
    assert [(r.tool_call_id, r.text, r.is_error) for r in results] == [
        ("call_0", '{"r":1}', False), ("call_2", '{"r":2}', False), ("call_1", '{"error":"boom"}', True)]


def test_explicit_ids_win_and_synthetic_ids_avoid_them():
    req = decode(body(
        user("go"),
        {"role": "model", "parts": [{"functionCall": {"name": "a"}},
                                    {"functionCall": {"name": "a", "id": "call_0"}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "a", "id": "call_0", "response": {}}},
                                   {"functionResponse": {"name": "a", "response": {}}},
                                   {"functionResponse": {"name": "zzz", "response": {}}}]}))
    assert [c.id for c in req.messages[1].tool_calls] == ["call_1", "call_0"]
    assert [r.tool_call_id for r in req.messages[2].parts] == ["call_0", "call_1", "call_2"]


# ---------------------------------------------------------------- tools

def test_tools_native_and_declared():
    req = decode(body(tools=[
        {"functionDeclarations": [{"name": "f"}, {"name": "g", "parametersJsonSchema": {
            "type": "object", "properties": {"x": {"type": "integer"}}}}]},
        {"google_search": {}, "codeExecution": {}}, {"urlContext": {}}]))
    assert req.tools == (Tool("f"), Tool("g", None, {"type": "object", "properties": {"x": {"type": "integer"}}}))
    assert req.metadata["gemini_native"] == {"googleSearch": {}, "codeExecution": {}, "urlContext": {}}


def test_tool_declaration_errors():
    with pytest.raises(InvalidRequest, match="twice"):
        decode(body(tools=[{"functionDeclarations": [{"name": "f"}, {"name": "f"}]}]))
    with pytest.raises(InvalidRequest, match="both parameters and parametersJsonSchema"):
        decode(body(tools=[{"functionDeclarations": [{"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}]))
    with pytest.raises(InvalidRequest) as exc:
        decode(body(tools=[{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJCT"}}]}]))
    assert exc.value.field == "tools[0].functionDeclarations[0].parameters.type"
    # tool schemas are normalised but not held to the response-schema consistency rules
    req = decode(body(tools=[{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "OBJECT", "required": ["ghost"]}}]}]))
    assert req.tools[0].parameters == {"type": "object", "required": ["ghost"]}


@pytest.mark.parametrize("config, choice, names", [
    ({"mode": "AUTO"}, ToolChoice("auto"), ["a", "b", "c"]),
    ({"mode": "none"}, ToolChoice("none"), ["a", "b", "c"]),
    ({"mode": "ANY"}, ToolChoice("required"), ["a", "b", "c"]),
    ({"mode": "ANY", "allowedFunctionNames": ["b"]}, ToolChoice("tool", "b"), ["a", "b", "c"]),
    ({"mode": "ANY", "allowed_function_names": ["c", "a"]}, ToolChoice("required"), ["a", "c"]),
    ({}, ToolChoice("auto"), ["a", "b", "c"]),
])
def test_tool_config(config, choice, names):
    req = decode(body(tools=[{"functionDeclarations": [{"name": n} for n in "abc"]}],
                      toolConfig={"functionCallingConfig": config}))
    assert req.tool_choice == choice
    assert [t.name for t in req.tools] == names


def test_tool_config_errors():
    tools = [{"functionDeclarations": [{"name": "a"}]}]
    for config, match in (({"mode": "SOMETIMES"}, "must be one of"),
                          ({"mode": "AUTO", "allowedFunctionNames": ["a"]}, "only valid with mode ANY"),
                          ({"mode": "ANY", "allowedFunctionNames": ["zz"]}, "not among")):
        with pytest.raises(InvalidRequest, match=match):
            decode(body(tools=tools, toolConfig={"functionCallingConfig": config}))
    assert decode(body(toolConfig={"functionCallingConfig": {"mode": "ANY"}})).tool_choice is None


# ---------------------------------------------------------------- generation config

@pytest.mark.parametrize("gen, expected", [
    ({"responseMimeType": "application/json"}, ResponseFormat("json_object")),
    ({"responseMimeType": "text/plain"}, None),
    ({"responseMimeType": "application/json; charset=utf-8"}, ResponseFormat("json_object")),
    ({"responseJsonSchema": {"type": "object"}}, ResponseFormat("json_schema", {"type": "object"})),
    ({"_responseJsonSchema": {"type": "string", "enum": ["a"]}, "responseMimeType": "application/json"},
     ResponseFormat("json_schema", {"type": "string", "enum": ["a"]})),
    ({"response_schema": {"type": "OBJECT"}}, ResponseFormat("json_schema", {"type": "object"})),
])
def test_response_formats(gen, expected):
    assert decode(body(generationConfig=gen)).response_format == expected


def test_seed_example_schema_error():
    gen = {"responseMimeType": "application/json", "responseSchema": {
        "type": "object", "properties": {"answer": {"type": "string"}},
        "required": ["answer", "confidence"]}}
    with pytest.raises(InvalidResponseFormatSchema) as exc:
        decode(body(generationConfig=gen))
    err = exc.value
    assert err.message.startswith("invalid_response_format_schema: generationConfig.responseSchema.required[1]")
    assert "'confidence'" in err.message
    assert (err.status, err.type_name, err.code) == (400, "invalid_response_format_schema",
                                                     "invalid_response_format_schema")


def test_response_format_refusals():
    with pytest.raises(UnsupportedResponseFormat) as exc:
        decode(body(generationConfig={"responseMimeType": "text/x.enum",
                                      "responseSchema": {"type": "STRING", "enum": ["a"]}}))
    assert exc.value.message.startswith("unsupported_response_format: generationConfig.responseMimeType")
    with pytest.raises(UnsupportedResponseFormat):
        decode(body(generationConfig={"responseMimeType": "text/plain", "responseSchema": {"type": "STRING"}}))
    with pytest.raises(InvalidResponseFormatSchema, match="send one"):
        decode(body(generationConfig={"responseSchema": {}, "responseJsonSchema": {}}))
    with pytest.raises(InvalidResponseFormatSchema):
        decode(body(generationConfig={"responseSchema": "object"}))


def test_native_generation_features():
    with pytest.raises(UnsupportedGeminiFeature, match="text only"):
        decode(body(generationConfig={"responseModalities": ["TEXT", "IMAGE"]}))
    assert decode(body(generationConfig={"responseModalities": ["TEXT"]})).metadata == {}
    with pytest.raises(UnsupportedGeminiFeature, match="cachedContent"):
        decode(body(cachedContent="cachedContents/abc"))


def test_unknown_and_ignored_fields_are_dropped():
    assert {"labels", "speechConfig", "responseLogprobs"} <= IGNORED_FIELDS
    plain = decode(body())
    noisy = decode(body(labels={"team": "x"}, serviceTier="flex", somethingNew={"a": 1},
                        generationConfig={"responseLogprobs": True, "mediaResolution": "LOW",
                                          "brandNewKnob": 3},
                        toolConfig={"retrievalConfig": {}}))
    assert noisy == plain


def test_nulls_mean_not_given():
    assert decode(body(tools=None, toolConfig=None, generationConfig=None, systemInstruction=None,
                       safetySettings=None, cachedContent=None)) == decode(body())
    assert decode(body(generationConfig={"temperature": None, "stopSequences": None})) == decode(body())


# ---------------------------------------------------------------- route check

def test_check_route_refuses_native_features_off_gemini():
    req = decode(body(tools=[{"googleSearch": {}}, {"codeExecution": {}}]))
    for kind in ("gemini", "simulator"):
        check_route(req, kind)
    with pytest.raises(UnsupportedGeminiFeature) as exc:
        check_route(req, "openai")
    assert "codeExecution, googleSearch" in exc.value.message
    assert exc.value.message.startswith("unsupported_gemini_feature:")
    check_route(decode(body()), "openai")


def test_check_route_refuses_non_object_roots_off_gemini():
    req = decode(body(generationConfig={"responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}}}))
    check_route(req, "gemini")
    for kind in ("openai", "anthropic"):
        with pytest.raises(UnsupportedResponseFormat):
            check_route(req, kind)
    check_route(decode(body(generationConfig={"responseSchema": {"type": "OBJECT"}})), "openai")


def test_usable_routes_keep_order_and_refuse_when_none_fit():
    kinds = {"a": "openai", "b": "gemini", "c": "anthropic", "d": None, "e": "simulator"}
    native = decode(body(tools=[{"googleSearch": {}}]))
    assert usable_routes(native, "abcde", kinds.get) == ("b", "d", "e")
    assert usable_routes(decode(body()), "abcde", kinds.get) == tuple("abcde")
    with pytest.raises(UnsupportedGeminiFeature):
        usable_routes(native, "ac", kinds.get)


# ---------------------------------------------------------------- upstream requests

def test_from_canonical_request_full():
    req = Request(
        model="pub",
        messages=(
            Message("system", (TextPart("sys"),)),
            Message("user", (TextPart("hi"), ImagePart(url="https://x/a.png"))),
            Message("assistant", (ThinkingPart("", "c2ln"), TextPart("calling"),
                                  ToolCallPart("call_0", "f", '{"a":1}'),
                                  ToolCallPart("call_Xyz", "g", "not json"))),
            Message("tool", (ToolResultPart("call_0", (TextPart('{"ok":true}'),)),)),
            Message("tool", (ToolResultPart("call_Xyz", (TextPart("plain"), ImagePart(data_b64="iVBORw0"))),)),
            Message("user", (TextPart("and?"),)),
            Message("system", (TextPart("late"),)),
        ),
        max_tokens=50, temperature=0.5, top_p=0.8, top_k=3, stop=("x",), seed=7,
        tools=(Tool("f"), Tool("g", "desc", {"type": "object"})),
        tool_choice=ToolChoice("tool", "g"),
        response_format=ResponseFormat("json_schema", {"type": "object"}),
        metadata={"gemini_native": {"googleSearch": {}}, "gemini_thinking": {"thinkingBudget": 0},
                  "gemini_safety": [{"category": "C", "threshold": "T"}],
                  "openai_extra": {"frequency_penalty": 0.3}},
    )
    assert from_canonical_request(req, "gemini-2.5-flash") == {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}, {"fileData": {"mimeType": "image/png",
                                                                      "fileUri": "https://x/a.png"}}]},
            {"role": "model", "parts": [
                {"text": "calling", "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "f", "args": {"a": 1}}},
                {"functionCall": {"name": "g", "args": {"_raw": "not json"}, "id": "call_Xyz"}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "f", "response": {"ok": True}}},
                {"functionResponse": {"name": "g", "response": {"output": "plain"}, "id": "call_Xyz"}},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0"}},
                {"text": "and?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "sys"}, {"text": "late"}]},
        "tools": [{"functionDeclarations": [
            {"name": "f", "parametersJsonSchema": {"type": "object", "properties": {}}},
            {"name": "g", "description": "desc", "parametersJsonSchema": {"type": "object"}}]},
            {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.5, "topP": 0.8, "topK": 3,
                             "seed": 7, "stopSequences": ["x"], "frequencyPenalty": 0.3,
                             "responseMimeType": "application/json",
                             "responseJsonSchema": {"type": "object"},
                             "thinkingConfig": {"thinkingBudget": 0}},
        "safetySettings": [{"category": "C", "threshold": "T"}],
    }


def test_from_canonical_request_small_cases():
    base = Request("m", (Message("user", (TextPart("q"),)),))
    assert from_canonical_request(base, "x") == {"contents": [{"role": "user", "parts": [{"text": "q"}]}]}
    failed = Request("m", (Message("user", (ToolResultPart("nope", (TextPart("bad"),), True),)),))
    assert from_canonical_request(failed, "x")["contents"][0]["parts"] == [
        {"functionResponse": {"name": "unknown_function", "response": {"error": "bad"}, "id": "nope"}}]
    json_mode = Request("m", base.messages, response_format=ResponseFormat("json_object"),
                        tools=(Tool("t"),), tool_choice=ToolChoice("required"))
    out = from_canonical_request(json_mode, "x")
    assert out["generationConfig"] == {"responseMimeType": "application/json"}
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_request_round_trip_through_gemini():
    original = decode(golden("request_agent_turn")["body"])
    again = decode(from_canonical_request(original, "x"))
    assert again == original


# ---------------------------------------------------------------- upstream responses

def test_golden_response_with_cache_and_thoughts():
    resp = to_canonical_response(golden("response_usage_cached_thoughts")["body"])
    assert resp.id == "mR3xaK2fKoHYz7IPn5uQ0Qw" and resp.model == "gemini-2.5-pro"
    assert resp.message.parts == (
        ThinkingPart("**Weighing the options**\nThe user wants a short answer."),
        ThinkingPart("", "Cs4BAcu98PBx2goldenSig=="),
        TextPart("Paris is the capital of France."))
    assert resp.finish_reason == "stop"
    assert resp.usage == Usage(input_tokens=2310, output_tokens=109, cached_input_tokens=2048,
                               reasoning_tokens=101)
    out = from_canonical_response(resp, "pub")
    assert out["usageMetadata"] == {"promptTokenCount": 2310, "candidatesTokenCount": 8,
                                    "totalTokenCount": 2419, "cachedContentTokenCount": 2048,
                                    "thoughtsTokenCount": 101}
    parts = golden("response_usage_cached_thoughts")["body"]["candidates"][0]["content"]["parts"]
    assert out["candidates"][0]["content"]["parts"] == parts
    parsed = sdk_response(out)
    assert parsed.text == "Paris is the capital of France."
    assert parsed.usage_metadata.cached_content_token_count == 2048


@pytest.mark.parametrize("reason, calls, expected", [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", True, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("PROHIBITED_CONTENT", False, "content_filter"), ("MALFORMED_FUNCTION_CALL", False, "error"),
    ("OTHER", False, "error"), ("SOMETHING_NEW", False, "error"), (None, False, "stop"),
])
def test_finish_reasons_in(reason, calls, expected):
    parts = [{"functionCall": {"name": "f", "args": {}}}] if calls else [{"text": "x"}]
    cand = {"content": {"role": "model", "parts": parts}}
    if reason:
        cand["finishReason"] = reason
    assert to_canonical_response({"candidates": [cand]}).finish_reason == expected


def test_blocked_prompt_is_content_filter():
    resp = to_canonical_response({"promptFeedback": {"blockReason": "SAFETY"},
                                  "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}})
    assert resp.finish_reason == "content_filter" and resp.message.parts == ()
    assert resp.usage == Usage(7, 0)
    assert sdk_response(from_canonical_response(resp, "m")).candidates[0].finish_reason == "SAFETY"


def test_response_calls_get_ids_and_other_parts():
    resp = to_canonical_response({"candidates": [{"index": 0, "finishReason": "STOP", "content": {"parts": [
        {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionCall": {"name": "f", "id": "abc"}},
        {"functionCall": {"name": "g"}},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGR"}},
        {"inlineData": {"mimeType": "image/png", "data": "0"}},
        {"somethingNew": {}},
    ]}}]})
    assert resp.message.parts == (ToolCallPart("call_0", "f", '{"a":1}'), ToolCallPart("abc", "f", "{}"),
                                  ToolCallPart("call_2", "g", "{}"),
                                  ImagePart(data_b64="iVBORw0", media_type="image/png"))
    assert resp.finish_reason == "tool_calls"


@pytest.mark.parametrize("bad", [
    [], "x", {}, {"candidates": []}, {"candidates": {}}, {"candidates": [3]},
    {"candidates": [{"content": []}]}, {"candidates": [{"content": {"parts": {}}}]},
    {"candidates": [{"content": {"parts": [{"text": 1}]}}]},
    {"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]},
    {"candidates": [{"finishReason": 3}]},
    {"candidates": [{}], "usageMetadata": {"promptTokenCount": -1}},
    {"candidates": [{}], "usageMetadata": []},
    {"candidates": [{}], "responseId": 5},
])
def test_bad_upstream_responses_are_protocol_errors(bad):
    with pytest.raises(UpstreamProtocolError):
        to_canonical_response(bad)


def test_embedded_error_is_upstream_error():
    with pytest.raises(UpstreamError, match="quota"):
        to_canonical_response({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}})


# ---------------------------------------------------------------- client responses

def test_client_response_shape_and_sdk_parse():
    resp = Response("r1", "up", Message("assistant", (
        TextPart("hi"), ToolCallPart("call_3", "f", '{"x":[1]}'), ToolCallPart("toolu_1", "g", "{}"))),
        "tool_calls", Usage(10, 20, 3, 5))
    out = from_canonical_response(resp, "pub")
    assert out == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "hi"}, {"functionCall": {"name": "f", "args": {"x": [1]}}},
            {"functionCall": {"name": "g", "args": {}, "id": "toolu_1"}}]},
            "finishReason": "STOP", "index": 0}],
        "modelVersion": "pub", "responseId": "r1",
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 15, "totalTokenCount": 30,
                          "cachedContentTokenCount": 3, "thoughtsTokenCount": 5}}
    parsed = sdk_response(out)
    assert [c.name for c in parsed.function_calls] == ["f", "g"]
    for reason, name in (("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), ("error", "OTHER")):
        r = Response("r", "m", Message("assistant", ()), reason)
        assert sdk_response(from_canonical_response(r, "m")).candidates[0].finish_reason == name


def test_foreign_signatures_are_not_written():
    resp = Response("r", "m", Message("assistant", (ThinkingPart("t", "not base64!"),
                                                    ThinkingPart("", "EqQBCkYIBhgC"), TextPart("x"))), "stop")
    parts = from_canonical_response(resp, "m")["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "t", "thought": True}, {"text": "x", "thoughtSignature": "EqQBCkYIBhgC"}]
    sdk_response(from_canonical_response(resp, "m"))


# ---------------------------------------------------------------- streams

def test_golden_streamed_function_calls():
    events, d = decode_stream(golden("stream_function_call")["chunks"])
    assert d.finished
    assert events == [
        StreamStart("dHNfaGxtT0xLQ3J6bUxFUHB2bmgtUWc", "gemini-2.5-flash"),
        TextDelta("Let me check both cities."),
        ThinkingDelta("", "CiQB0e2Kb7ZTbGoldenSigAAAA=="),
        ToolCallStart(0, "call_0", "get_weather"), ToolCallDelta(0, '{"location":"Paris"}'),
        ToolCallStart(1, "call_1", "get_weather"),
        ToolCallDelta(1, '{"location":"Tokyo","unit":"celsius"}'),
        Finish("tool_calls"),
        UsageEvent(Usage(input_tokens=84, output_tokens=97, reasoning_tokens=56)),
    ]


def test_stream_usage_is_sent_once_and_last_wins():
    chunk = lambda text, n, **kw: {"candidates": [{"content": {"parts": [{"text": text}]}, **kw}],
                                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": n}}
    events, d = decode_stream([chunk("a", 1), chunk("b", 2), chunk("c", 3, finishReason="STOP")])
    assert [e for e in events if isinstance(e, UsageEvent)] == [UsageEvent(Usage(5, 3))]
    # A cut stream still reports the usage it saw, once, at close.
    events, d = decode_stream([chunk("a", 1), chunk("b", 2)])
    assert not d.finished and events[-1] == UsageEvent(Usage(5, 2))
    # Usage after the finish chunk is forwarded.
    d = StreamDecoder()
    d.feed({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]})
    assert d.feed({"usageMetadata": {"promptTokenCount": 1}}) == [UsageEvent(Usage(1, 0))]
    assert d.close() == []


def test_stream_errors():
    d = StreamDecoder()
    d.feed({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]})
    with pytest.raises(UpstreamProtocolError, match="after its finishReason"):
        d.feed({"candidates": [{"content": {"parts": [{"text": "late"}]}}]})
    with pytest.raises(UpstreamError, match="overloaded"):
        StreamDecoder().feed({"error": {"code": 503, "message": "overloaded"}})
    with pytest.raises(UpstreamProtocolError):
        StreamDecoder().feed([])


def test_stream_blocked_prompt():
    events, _ = decode_stream([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                "usageMetadata": {"promptTokenCount": 9}}])
    assert events == [StreamStart("", ""), Finish("content_filter"), UsageEvent(Usage(9, 0))]


def test_stream_encoder_chunks():
    enc = StreamEncoder("req_1", "pub")
    evs = [StreamStart("x", "up"), ThinkingDelta("hm", None), ThinkingDelta("", "c2ln"), TextDelta("Hel"),
           TextDelta("lo"), ToolCallStart(0, "call_0", "f"), ToolCallDelta(0, '{"a"'),
           ToolCallDelta(0, ':1}'), ToolCallStart(1, "id9", "g"), Finish("tool_calls"),
           UsageEvent(Usage(4, 6))]
    chunks = [ch for ev in evs for ch in enc.encode(ev)] + enc.end()
    parts = [ch["candidates"][0]["content"]["parts"] for ch in chunks]
    assert parts == [[{"text": "hm", "thought": True}], [{"text": "Hel", "thoughtSignature": "c2ln"}],
                     [{"text": "lo"}], [{"functionCall": {"name": "f", "args": {"a": 1}}},
                                        {"functionCall": {"name": "g", "args": {}, "id": "id9"}}]]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 10
    assert all(ch["responseId"] == "req_1" and ch["modelVersion"] == "pub" for ch in chunks)
    assert "finishReason" not in chunks[0]["candidates"][0] and "usageMetadata" not in chunks[0]
    for ch in chunks:
        sdk_response(ch)


def test_stream_encoder_final_chunk_has_text_for_sdk_users():
    enc = StreamEncoder("r", "m")
    for ev in (TextDelta("a"), Finish("stop")):
        enc.encode(ev)
    (last,) = enc.end()
    assert last["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert sdk_response(last).text == ""


def test_stream_round_trip_golden():
    events, _ = decode_stream(golden("stream_function_call")["chunks"])
    enc = StreamEncoder("r", "m")
    chunks = [ch for ev in events for ch in enc.encode(ev)] + enc.end()
    again, d = decode_stream(wire(chunks))
    assert d.finished
    assert collect_stream(again).message == collect_stream(events).message
    assert collect_stream(again).usage == collect_stream(events).usage


# ---------------------------------------------------------------- properties

names = st.text("abcdefgh_", min_size=1, max_size=6)
texts = st.text(max_size=12)
args = st.dictionaries(names, st.integers() | st.text(max_size=5) | st.booleans(), max_size=3)
assistant_parts = st.lists(
    st.one_of(texts.filter(bool).map(TextPart),
              st.tuples(names, args).map(lambda t: ToolCallPart("pending", t[0], json.dumps(t[1], separators=(",", ":"), ensure_ascii=False)))),
    max_size=4)
usages = st.builds(lambda i, o, c, r: Usage(i, o + r, min(c, i), r),
                   st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))


def _numbered(parts: list) -> tuple:
    n, out = 0, []
    for p in parts:
        if isinstance(p, ToolCallPart):
            p, n = ToolCallPart(f"call_{n}", p.name, p.arguments), n + 1
        out.append(p)
    return tuple(out)


@settings(max_examples=150, deadline=None)
@given(assistant_parts, st.sampled_from(["stop", "length", "content_filter"]), st.none() | usages)
def test_response_round_trip(parts, finish, usage):
    parts = _numbered(parts)
    calls = any(isinstance(p, ToolCallPart) for p in parts)
    resp = Response("rid", "pub", Message("assistant", parts), finish, usage)
    back = to_canonical_response(wire(from_canonical_response(resp, "pub")))
    assert back.message == resp.message
    assert back.finish_reason == ("tool_calls" if calls and finish == "stop" else finish)
    assert back.usage == usage


@settings(max_examples=150, deadline=None)
@given(assistant_parts, st.sampled_from(["stop", "length"]), st.none() | usages)
def test_stream_encoder_decoder_round_trip(parts, finish, usage):
    resp = Response("rid", "pub", Message("assistant", _numbered(parts)), finish, usage)
    enc = StreamEncoder("rid", "pub")
    chunks = [ch for ev in response_events(resp) for ch in enc.encode(ev)] + enc.end()
    for ch in chunks:
        sdk_response(ch)
    events, d = decode_stream(wire(chunks))
    assert d.finished
    got = collect_stream(events)
    # Text runs merge and tool calls go last, as collect_stream also arranges them.
    assert got.message == collect_stream(response_events(resp)).message
    assert got.usage == usage
