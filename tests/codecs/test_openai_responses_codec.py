"""The OpenAI Responses codec: request decoding, chaining helpers, the Response object and
the stream encoder, checked against golden fixtures and the official SDK's own types."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.canonical import (
    Finish, ImagePart, Message, Response, ResponseFormat, StreamStart, TextDelta,
    TextPart, ThinkingDelta, ThinkingPart, Tool, ToolCallDelta, ToolCallPart, ToolCallStart,
    ToolChoice, ToolResultPart, Usage, UsageEvent, collect_stream,
)
from gateway.codecs import openai_responses as R
from gateway.codecs.openai_responses_stream import StreamEncoder
from gateway.errors import InvalidRequest

GOLDEN = Path(__file__).parent / "golden" / "openai_responses"
EVENT = TypeAdapter(ResponseStreamEvent)


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def body(**kw) -> dict:
    return {"model": "gpt-4.1", "input": "hi", **kw}


def refused(b: dict, field: str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as exc:
        R.to_canonical_request(b)
    assert exc.value.field == field, exc.value.message
    return exc.value


# ---------------------------------------------------------------- requests

def test_golden_agent_turn_request():
    req = R.to_canonical_request(golden("request_agent_turn")["body"])
    assert req.model == "gpt-4.1"
    assert req.messages == (
        Message("system", (TextPart("You are a terse weather assistant."),)),
        Message("system", (TextPart("Answer in metric units."),)),
        Message("user", (
            TextPart("Where is this, and what's the weather there?"),
            ImagePart(data_b64="/9j/4AAQSkZJRg==", media_type="image/jpeg", detail="low"))),
        Message("assistant", (
            ThinkingPart("Looks like Paris; need weather.", "gAAAAABn-sig"),
            TextPart("That is Paris. Checking the weather."),
            ToolCallPart("call_12345xyz", "get_weather", '{"city":"Paris"}'))),
        Message("tool", (ToolResultPart("call_12345xyz", (TextPart("18C, clear"),)),)),
    )
    assert req.tools == (Tool("get_weather", "Weather by city", {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        "additionalProperties": False}),)
    assert req.tool_choice == ToolChoice("auto")
    assert req.parallel_tool_calls is False
    assert req.response_format == ResponseFormat("json_schema", {
        "type": "object", "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
        "required": ["city", "celsius"], "additionalProperties": False}, "weather_report", True)
    assert (req.max_tokens, req.temperature, req.top_p) == (256, 0.2, 0.9)
    assert req.stream is True and req.user == "user-42"


def test_string_input_and_instructions_and_history_order():
    history = (Message("user", (TextPart("earlier"),)), Message("assistant", (TextPart("ok"),)))
    req = R.to_canonical_request(body(instructions="Be brief."), history=history)
    assert req.messages == (Message("system", (TextPart("Be brief."),)), *history,
                            Message("user", (TextPart("hi"),)))


def test_input_is_required_without_history_but_not_with_it():
    refused({"model": "m"}, "input")
    refused({"model": "m", "input": []}, "input")
    history = (Message("user", (TextPart("earlier"),)),)
    assert R.to_canonical_request({"model": "m"}, history=history).messages == history


def test_consecutive_assistant_items_form_one_turn():
    req = R.to_canonical_request(body(input=[
        {"role": "user", "content": "go"},
        {"type": "message", "role": "assistant", "content": ""},
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{\"x\":1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [
            {"type": "input_text", "text": "two"},
            {"type": "input_image", "image_url": "https://x/y.png", "detail": "original"}]},
    ]))
    assert req.messages == (
        Message("user", (TextPart("go"),)),
        Message("assistant", (ToolCallPart("c1", "a", "{}"), ToolCallPart("c2", "b", '{"x":1}'))),
        Message("tool", (ToolResultPart("c1", (TextPart("one"),)),)),
        Message("tool", (ToolResultPart("c2", (TextPart("two"),
                                               ImagePart(url="https://x/y.png", detail="high"))),)),
    )


def test_reasoning_items_become_thinking_or_are_dropped():
    req = R.to_canonical_request(body(input=[
        {"role": "user", "content": "q"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "s"}],
         "content": [{"type": "reasoning_text", "text": "raw"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
    ]))
    assert req.messages[1] == Message("assistant", (ThinkingPart("raw"), TextPart("a")))


@pytest.mark.parametrize("kind", ["web_search", "web_search_preview", "file_search",
                                  "code_interpreter", "computer_use_preview", "mcp"])
def test_hosted_tools_are_kept_for_the_routing_policy(kind):
    tool = {"type": kind, "external_web_access": False}
    req = R.to_canonical_request(body(tools=[tool, {"type": "function", "name": "f"}]))
    assert [t.name for t in req.tools] == ["f"]
    assert req.metadata["hosted_tools"] == [{"family": "openai", "name": kind, "spec": tool}]


@pytest.mark.parametrize("kind", ["local_shell", "apply_patch", "custom", "shell"])
def test_builtin_tools_are_refused_clearly(kind):
    err = refused(body(tools=[{"type": kind}]), "tools[0].type")
    assert f"'{kind}' is a built-in OpenAI tool" in err.message
    assert "not supported by this gateway" in err.message and err.status == 400


@pytest.mark.parametrize("item, field, words", [
    ({"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]},
     "input[0].content[0].file_id", "no Files API"),
    ({"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]},
     "input[0].content[0].type", "not supported"),
    ({"type": "item_reference", "id": "msg_1"}, "input[0].type", "previous_response_id"),
    ({"type": "web_search_call", "id": "ws_1"}, "input[0].type", "built-in tools"),
    ({"type": "function_call", "call_id": "c", "name": "f"}, "input[0].arguments", "string of JSON"),
    ({"type": "function_call_output", "output": "x"}, "input[0].call_id", "required"),
    ({"role": "tool", "content": "x"}, "input[0].role", "must be one of"),
    ({"role": "system", "content": [{"type": "input_image", "image_url": "u"}]},
     "input[0].content[0].type", "input_text"),
    ("just a string", "input[0]", "object"),
])
def test_bad_items_name_their_field(item, field, words):
    assert words in refused(body(input=[item]), field).message


@pytest.mark.parametrize("extra, field", [
    ({"temperature": "hot"}, "temperature"), ({"temperature": 3}, "temperature"),
    ({"top_p": 2}, "top_p"), ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": True}, "max_output_tokens"), ({"model": 5}, "model"),
    ({"input": 7}, "input"), ({"tools": {}}, "tools"), ({"stream": "yes"}, "stream"),
    ({"metadata": {"k": 1}}, "metadata"), ({"metadata": [1]}, "metadata"),
    ({"truncation": "sometimes"}, "truncation"), ({"include": "x"}, "include"),
    ({"reasoning": "high"}, "reasoning"), ({"store": "no"}, "store"),
    ({"background": True}, "background"), ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"), ({"previous_response_id": 3}, "previous_response_id"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls"), ({"text": "json"}, "text"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}, "tool_choice"),
    ({"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
])
def test_type_errors_name_the_field(extra, field):
    refused(body(**extra), field)


def test_json_schema_errors_carry_the_schema_code():
    err = refused(body(text={"format": {"type": "json_schema", "schema": {}}}), "text.format.name")
    assert err.code == "invalid_response_format_schema"
    err = refused(body(text={"format": {"type": "json_schema", "name": "n"}}), "text.format.schema")
    assert err.code == "invalid_response_format_schema"


def test_tool_choice_forms_and_formats():
    tools = [{"type": "function", "name": "f"}]
    for wire, canon in (("auto", ToolChoice("auto")), ("none", ToolChoice("none")),
                        ("required", ToolChoice("required")),
                        ({"type": "function", "name": "f"}, ToolChoice("tool", "f"))):
        assert R.to_canonical_request(body(tools=tools, tool_choice=wire)).tool_choice == canon
    assert R.to_canonical_request(body(text={"format": {"type": "json_object"}})).response_format \
        == ResponseFormat("json_object")
    assert R.to_canonical_request(body(text={"format": {"type": "text"}})).response_format \
        == ResponseFormat("text")


def test_unknown_fields_and_disabled_background_pass():
    req = R.to_canonical_request(body(background=False, service_tier="flex", future_knob=1))
    assert req.messages == (Message("user", (TextPart("hi"),)),)


# ---------------------------------------------------------------- chaining

def test_stored_conversation_replays_to_the_same_messages():
    b = body(instructions="sys", input=[{"role": "user", "content": "q"}])
    req = R.to_canonical_request(b)
    answer = Response("r", "m", Message("assistant", (
        ThinkingPart("think", "sig"), TextPart("calling"), ToolCallPart("c1", "f", '{"a":1}'))),
        "tool_calls")
    obj = R.from_canonical_response(answer, model="m", response_id="resp_x", created_at=1,
                                    request_echo=R.request_echo(b))
    items = R.input_items(b) + R.output_as_input(obj)
    # Instructions are not part of the stored conversation, as on OpenAI.
    assert R.history_messages(items) == req.messages[1:] + (answer.message,)
    assert R.input_items(body(input="plain")) == [
        {"type": "message", "role": "user", "content": "plain"}]
    assert json.loads(json.dumps(items)) == items


# ---------------------------------------------------------------- responses

def echo(**kw) -> dict:
    return R.request_echo(body(**kw))


def encode(resp: Response, **kw) -> dict:
    obj = R.from_canonical_response(resp, model="prism-mini", response_id="resp_abc",
                                    created_at=1, request_echo=echo(**kw))
    SDKResponse.model_validate(obj)
    return obj


def test_golden_response_with_function_calls():
    g = golden("response_function_calls")
    resp = Response("chatcmpl-up", "up", Message("assistant", (
        ThinkingPart("Two cities, two calls.", "sig-1"), TextPart("Checking both."),
        ToolCallPart("call_a", "get_weather", '{"city":"Paris"}'),
        ToolCallPart("call_b", "get_weather", '{"city":"Oslo"}'))), "tool_calls",
        Usage(input_tokens=120, output_tokens=40, cached_input_tokens=64, reasoning_tokens=12))
    obj = R.from_canonical_response(resp, model="prism-mini", response_id=g["expected"]["id"],
                                    created_at=g["expected"]["created_at"],
                                    request_echo=R.request_echo(g["request"]))
    assert obj == g["expected"]
    parsed = SDKResponse.model_validate(obj)
    assert parsed.output_text == "Checking both."
    assert [o.call_id for o in parsed.output if o.type == "function_call"] == ["call_a", "call_b"]


@pytest.mark.parametrize("finish, status, reason", [
    ("length", "incomplete", "max_output_tokens"), ("content_filter", "incomplete", "content_filter"),
    ("stop", "completed", None), ("tool_calls", "completed", None), ("error", "failed", None)])
def test_finish_reasons_map_to_status(finish, status, reason):
    obj = encode(Response("r", "m", Message("assistant", (TextPart("cut"),)), finish))
    assert obj["status"] == status
    assert obj["incomplete_details"] == ({"reason": reason} if reason else None)
    assert obj["output"][0]["status"] == ("incomplete" if status == "incomplete" else "completed")
    assert (obj["error"] is not None) == (status == "failed")


def test_empty_answer_is_one_empty_message_and_missing_usage_is_null():
    obj = encode(Response("r", "m", Message("assistant", ()), "stop"))
    assert [o["type"] for o in obj["output"]] == ["message"]
    assert obj["output"][0]["content"][0]["text"] == "" and obj["usage"] is None


def test_echo_of_settings_validates():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    obj = encode(Response("r", "m", Message("assistant", (TextPart("{}"),)), "stop"),
                 instructions="sys", temperature=0.5, top_p=1, max_output_tokens=50,
                 text={"format": {"type": "json_schema", "name": "n", "schema": schema,
                                  "strict": True}},
                 tools=[{"type": "function", "name": "f", "strict": True}],
                 tool_choice={"type": "function", "name": "f"}, parallel_tool_calls=False,
                 previous_response_id="resp_prev", store=False, user="u", metadata={"a": "b"},
                 reasoning={"effort": "medium", "summary": "weird-new-value"})
    parsed = SDKResponse.model_validate(obj)
    assert parsed.text.format.schema_ == schema
    assert parsed.instructions == "sys" and parsed.previous_response_id == "resp_prev"
    assert obj["reasoning"] == {"effort": "medium", "summary": None}
    assert obj["store"] is False and parsed.tool_choice.name == "f"


# ---------------------------------------------------------------- streams

def events_from(spec: list[dict]) -> list:
    makers = {"start": lambda v: StreamStart(**v), "thinking": ThinkingDelta, "text": TextDelta,
              "tool_start": lambda v: ToolCallStart(**v), "tool_delta": lambda v: ToolCallDelta(**v),
              "finish": Finish, "usage": lambda v: UsageEvent(Usage(**v))}
    return [makers[k](v) for d in spec for k, v in d.items()]


def run(events: list, fallback: Usage | None = None, **echo_kw) -> tuple[list[dict], StreamEncoder]:
    enc = StreamEncoder("resp_abc", "prism-mini", 1, echo(**echo_kw))
    out = [e for ev in events for e in enc.encode(ev)] + enc.finish(fallback)
    return out, enc


def sdk_final(out: list[dict]):
    """Feed the events through the SDK's own stream accumulator, as responses.stream does,
    and return the response its final event carries."""
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    seen = [ev for e in out for ev in state.handle_event(EVENT.validate_python(e))]
    return seen[-1].response


def check_sequence(out: list[dict]) -> None:
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    for e in out:
        EVENT.validate_python(e)


def test_golden_stream_event_sequence():
    g = golden("stream_reasoning_text_call")
    enc = StreamEncoder(g["response_id"], "prism-mini", g["created_at"], R.request_echo(g["request"]))
    out = [e for ev in events_from(g["events_in"]) for e in enc.encode(ev)] + enc.finish()
    assert out == g["expected"]
    check_sequence(out)
    assert sdk_final(out).output[2].arguments == '{"city":"Paris"}'
    assert enc.final == out[-1]["response"]


def test_stream_matches_the_plain_response_and_the_sdk_accumulates_it():
    events = [StreamStart("x", "up"), ThinkingDelta("hm"), ThinkingDelta("", "sig"),
              TextDelta("Hel"), TextDelta("lo"), ToolCallStart(0, "c1", "f"),
              ToolCallDelta(0, '{"a":'), ToolCallDelta(0, "1}"), Finish("tool_calls"),
              UsageEvent(Usage(5, 7))]
    out, enc = run(events)
    check_sequence(out)
    plain = R.from_canonical_response(collect_stream(events), model="prism-mini",
                                      response_id="resp_abc", created_at=1, request_echo=echo())
    assert enc.final == plain
    assert out[-1]["type"] == "response.completed"
    final = sdk_final(out)
    assert final.output_text == "Hello" and final.usage.output_tokens == 7
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call"]


def test_interleaved_parallel_calls_keep_their_own_arguments():
    events = [StreamStart("x", "up"), ToolCallStart(0, "c0", "f"), ToolCallStart(1, "c1", "g"),
              ToolCallDelta(0, '{"a"'), ToolCallDelta(1, '{"b":2}'), ToolCallDelta(0, ":1}"),
              Finish("tool_calls")]
    out, enc = run(events, Usage(1, 2))
    check_sequence(out)
    sdk_final(out)
    calls = [(o["call_id"], o["arguments"]) for o in enc.final["output"]]
    assert calls == [("c0", '{"a":1}'), ("c1", '{"b":2}')]
    assert enc.final["usage"]["output_tokens"] == 2   # the fallback stood in


def test_text_after_a_call_opens_a_new_message():
    out, enc = run([StreamStart("x", "up"), TextDelta("a"), ToolCallStart(0, "c", "f"),
                    TextDelta("b"), Finish("tool_calls"), UsageEvent(Usage(1, 1))])
    check_sequence(out)
    sdk_final(out)
    assert [o["type"] for o in enc.final["output"]] == ["message", "function_call", "message"]


def test_length_finish_ends_with_response_incomplete():
    out, enc = run([StreamStart("x", "up"), TextDelta("cut"), Finish("length"),
                    UsageEvent(Usage(3, 3))])
    check_sequence(out)
    assert sdk_final(out).status == "incomplete"
    assert out[-1]["type"] == "response.incomplete"
    assert enc.final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert enc.final["output"][0]["status"] == "incomplete"


def test_empty_stream_still_has_one_message():
    out, enc = run([StreamStart("x", "up"), Finish("stop")], Usage(1, 0))
    check_sequence(out)
    sdk_final(out)
    assert enc.final["output"][0]["content"][0]["text"] == ""


def test_failure_mid_stream_sends_error_then_response_failed():
    enc = StreamEncoder("resp_abc", "prism-mini", 1, echo())
    out = enc.encode(StreamStart("x", "up")) + enc.encode(TextDelta("par"))
    out += enc.fail("provider_error", "upstream went away")
    check_sequence(out)
    assert [e["type"] for e in out[-2:]] == ["error", "response.failed"]
    assert out[-2]["message"] == "upstream went away"
    assert enc.final["status"] == "failed" and enc.final["error"]["code"] == "server_error"
    assert enc.final["output"][0]["status"] == "incomplete"
    assert enc.final["output"][0]["content"][0]["text"] == "par"


def test_namespace_tools_go_up_flat_and_come_back_named():
    tools = [{"type": "function", "name": "exec"},
             {"type": "namespace", "name": "agents", "description": "sub-agents", "tools": [
                 {"type": "function", "name": "spawn", "parameters": {"type": "object"}},
                 {"type": "function", "name": "exec"}]},
             {"type": "function", "name": "agents__spawn"}]
    history = [{"role": "user", "content": "go"},
               {"type": "function_call", "call_id": "c0", "name": "spawn", "namespace": "agents",
                "arguments": "{}"},
               {"type": "function_call_output", "call_id": "c0", "output": "ok"}]
    req = R.to_canonical_request(body(tools=tools, input=history))
    assert [t.name for t in req.tools] == ["exec", "agents__spawn_2", "agents__exec", "agents__spawn"]
    assert req.messages[1].parts[0].name == "agents__spawn_2"
    echo = R.request_echo(body(tools=tools))
    resp = Response("resp_1", "m", Message("assistant", (ToolCallPart("c1", "agents__spawn_2", "{}"),
                                                          ToolCallPart("c2", "agents__spawn", "{}"))),
                    "tool_calls")
    out = R.from_canonical_response(resp, model="m", response_id="resp_1", created_at=1,
                                    request_echo=echo)
    assert [(i.get("namespace"), i["name"]) for i in out["output"]] == [
        ("agents", "spawn"), (None, "agents__spawn")]
    assert [t["name"] for t in out["tools"]] == ["exec", "agents__spawn"]
    from gateway.codecs.openai_responses_stream import StreamEncoder
    from gateway.canonical import response_events
    enc = StreamEncoder("resp_1", "m", 1, echo)
    events = [e for ev in response_events(resp) for e in enc.encode(ev)] + enc.finish()
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(i.get("namespace"), i["name"]) for i in done] == [("agents", "spawn"), (None, "agents__spawn")]


def test_stored_namespaced_calls_replay_under_their_flat_names():
    items = [{"role": "user", "content": "go"},
             {"type": "function_call", "call_id": "c0", "name": "spawn", "namespace": "agents",
              "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c0", "output": "ok"}]
    assert R.history_messages(items)[1].parts[0].name == "agents__spawn"
