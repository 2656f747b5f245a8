"""Chat Completions requests from clients -> canonical (the dialect rules are in the
package docstring)."""
from __future__ import annotations

import re

from gateway.canonical import (
    ImagePart, Message, Part, Request, ResponseFormat, TextPart, Tool, ToolCallPart,
    ToolChoice, ToolResultPart,
)
from gateway.codecs.fields import (
    bad as _bad, is_int as _is_int, opt_bool as _opt_bool, opt_number as _opt_number,
    opt_positive_int as _opt_positive_int, opt_str as _opt_str, req_str as _req_str,
    tool_items,
)
from gateway.errors import InvalidRequest

MAX_MESSAGES = 10_000
MAX_TOOLS = 128

IGNORED_FIELDS = frozenset({
    "logprobs", "top_logprobs", "logit_bias", "metadata", "store", "service_tier",
    "reasoning_effort", "modalities", "audio", "prediction", "web_search_options",
    "verbosity", "prompt_cache_key", "safety_identifier",
})
REFUSED_FIELDS = {
    "functions": "is the deprecated form of tools and is not supported; send tools",
    "function_call": "is the deprecated form of tool_choice and is not supported; send tool_choice",
}
PENALTIES = ("frequency_penalty", "presence_penalty")
DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.S)
_DETAILS = ("auto", "low", "high")


def common_options(body: dict) -> tuple[bool, bool, int | None, dict]:
    """stream, stream_options.include_usage, seed and the penalties: the fields the
    Chat Completions and legacy Completions bodies share."""
    stream = bool(_opt_bool(body, "stream"))
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        _bad("stream_options", "must be an object")
    # Usage chunks exist only in streams, so the flag means nothing without one.
    include_usage = stream and bool(_opt_bool(options or {}, "include_usage", "stream_options"))
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        _bad("seed", "must be an integer")
    extra = {k: v for k in PENALTIES if (v := _opt_number(body, k, -2, 2)) is not None}
    return stream, include_usage, seed, extra


def to_canonical_request(body: object) -> Request:
    """Decode a client's (already JSON-parsed) Chat Completions request body."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for key, problem in REFUSED_FIELDS.items():
        if body.get(key) is not None:
            _bad(key, problem)
    model = _req_str(body, "model", "")
    messages = _messages(body.get("messages"))
    n = body.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        _bad("n", "must be 1: only n=1 is supported")
    legacy_max = _opt_positive_int(body, "max_tokens")
    max_tokens = _opt_positive_int(body, "max_completion_tokens") or legacy_max
    tools = _tools(body.get("tools"))
    stream, include_usage, seed, extra = common_options(body)
    return Request(
        model=model, messages=messages, max_tokens=max_tokens,
        temperature=_opt_number(body, "temperature", 0, 2), top_p=_opt_number(body, "top_p", 0, 1),
        stop=stop_sequences(body.get("stop")), tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=_opt_bool(body, "parallel_tool_calls"),
        response_format=_response_format(body.get("response_format")),
        stream=stream, include_usage=include_usage, user=_opt_str(body, "user"), seed=seed,
        metadata={"openai_extra": extra} if extra else {},
    )


def _messages(v: object) -> tuple[Message, ...]:
    if not isinstance(v, list) or not v:
        _bad("messages", "is required and must be a non-empty array of message objects")
    if len(v) > MAX_MESSAGES:
        _bad("messages", f"holds {len(v)} messages; at most {MAX_MESSAGES} are allowed")
    return tuple(_message(m, f"messages[{i}]") for i, m in enumerate(v))


def _message(m: object, where: str) -> Message:
    if not isinstance(m, dict):
        _bad(where, "must be an object")
    role = m.get("role")
    content = m.get("content")
    if role == "system" or role == "developer":
        return Message("system", _text_parts(content, f"{where}.content"), _opt_str(m, "name", where))
    if role == "user":
        return Message("user", _user_parts(content, f"{where}.content"), _opt_str(m, "name", where))
    if role == "assistant":
        return _assistant(m, where)
    if role == "tool":
        call_id = _req_str(m, "tool_call_id", where)
        return Message("tool", (ToolResultPart(call_id, _text_parts(content, f"{where}.content")),))
    if role == "function":
        _bad(f"{where}.role", "'function' is the deprecated form of 'tool' and is not supported")
    _bad(f"{where}.role", "must be one of system, developer, user, assistant, tool")


def _text_parts(content: object, where: str, *, assistant: bool = False) -> tuple[TextPart, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    if not isinstance(content, list):
        _bad(where, "must be a string or an array of text parts")
    out = []
    for j, p in enumerate(content):
        pw = f"{where}[{j}]"
        if not isinstance(p, dict):
            _bad(pw, "must be an object")
        kind = p.get("type")
        if kind == "text" or (assistant and kind == "refusal"):
            out.append(TextPart(_req_str(p, kind, pw, empty_ok=kind == "text")))
        else:
            _bad(f"{pw}.type", "must be 'text'" + (" or 'refusal'" if assistant else ""))
    return tuple(out)


def _user_parts(content: object, where: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    if not isinstance(content, list):
        _bad(where, "must be a string or an array of content parts")
    out: list[Part] = []
    for j, p in enumerate(content):
        pw = f"{where}[{j}]"
        if not isinstance(p, dict):
            _bad(pw, "must be an object")
        kind = p.get("type")
        if kind == "text":
            out.append(TextPart(_req_str(p, "text", pw, empty_ok=True)))
        elif kind == "image_url":
            out.append(_image(p.get("image_url"), f"{pw}.image_url"))
        elif kind == "input_audio" or kind == "file":
            _bad(f"{pw}.type", f"'{kind}' content is not supported by this gateway")
        else:
            _bad(f"{pw}.type", "must be 'text' or 'image_url'")
    return tuple(out)


def _image(v: object, where: str) -> ImagePart:
    if not isinstance(v, dict):
        _bad(where, "must be an object with a url")
    url = _req_str(v, "url", where)
    detail = v.get("detail")
    if detail is not None and not (isinstance(detail, str) and detail in _DETAILS):
        _bad(f"{where}.detail", "must be one of auto, low, high")
    m = DATA_URL.fullmatch(url)
    if m:
        return ImagePart(data_b64=m[2], media_type=m[1], detail=detail)
    return ImagePart(url=url, detail=detail)


def _assistant(m: dict, where: str) -> Message:
    if m.get("function_call") is not None:
        _bad(f"{where}.function_call", "is the deprecated form of tool_calls and is not supported")
    content = m.get("content")
    # An empty or null content says "no text", typically beside tool_calls.
    parts: list[Part] = [] if content is None else [
        p for p in _text_parts(content, f"{where}.content", assistant=True) if p.text]
    calls = m.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            _bad(f"{where}.tool_calls", "must be an array")
        parts.extend(_history_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls))
    return Message("assistant", tuple(parts), _opt_str(m, "name", where))


def _history_call(c: object, where: str) -> ToolCallPart:
    if not isinstance(c, dict):
        _bad(where, "must be an object")
    if c.get("type", "function") != "function":
        _bad(f"{where}.type", "must be 'function'")
    call_id = _req_str(c, "id", where)
    fn = c.get("function")
    if not isinstance(fn, dict):
        _bad(f"{where}.function", "must be an object with name and arguments")
    name = _req_str(fn, "name", f"{where}.function")
    args = fn.get("arguments")
    if not isinstance(args, str):
        _bad(f"{where}.function.arguments", "must be a string of JSON")
    return ToolCallPart(call_id, name, args)


def stop_sequences(v: object) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and len(v) <= 4 and all(isinstance(s, str) for s in v):
        return tuple(v)
    _bad("stop", "must be a string or an array of up to 4 strings")


def _tools(v: object) -> tuple[Tool, ...]:
    out = []
    for where, t in tool_items(v, MAX_TOOLS):
        if t.get("type") != "function":
            _bad(f"{where}.type", "must be 'function' (only function tools are supported)")
        fn = t.get("function")
        if not isinstance(fn, dict):
            _bad(f"{where}.function", "must be an object")
        name = _req_str(fn, "name", f"{where}.function")
        description = _opt_str(fn, "description", f"{where}.function")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            _bad(f"{where}.function.parameters", "must be a JSON schema object")
        out.append(Tool(name, description) if params is None else Tool(name, description, params))
    return tuple(out)


def _tool_choice(v: object, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if v is None:
        return None
    if isinstance(v, str) and v in ("auto", "none", "required"):
        return ToolChoice(v)  # type: ignore[arg-type]
    if isinstance(v, dict) and v.get("type") == "function" and isinstance(v.get("function"), dict):
        name = _req_str(v["function"], "name", "tool_choice.function")
        if all(t.name != name for t in tools):
            _bad("tool_choice.function.name", f"names '{name}', which is not among tools")
        return ToolChoice("tool", name)
    _bad("tool_choice", "must be 'auto', 'none', 'required' or "
                        "{\"type\": \"function\", \"function\": {\"name\": ...}}")


def _response_format(v: object) -> ResponseFormat | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        _bad("response_format", "must be an object")
    kind = v.get("type")
    if kind == "text" or kind == "json_object":
        return ResponseFormat(kind)
    if kind != "json_schema":
        _bad("response_format.type", "must be one of text, json_object, json_schema")
    js = v.get("json_schema")
    code = "invalid_response_format_schema"
    if not isinstance(js, dict):
        _bad("response_format.json_schema", "must be an object with name and schema", code)
    name = js.get("name")
    if not isinstance(name, str) or not name:
        _bad("response_format.json_schema.name", "is required and must be a non-empty string", code)
    schema = js.get("schema")
    if not isinstance(schema, dict):
        _bad("response_format.json_schema.schema", "is required and must be a JSON schema object", code)
    strict = _opt_bool(js, "strict", "response_format.json_schema")
    return ResponseFormat("json_schema", schema, name, strict)

