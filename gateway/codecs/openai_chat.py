"""OpenAI Chat Completions wire format <-> the canonical model, both directions.

Owns every Chat Completions shape: client request bodies in (``to_canonical_request``),
upstream request bodies out (``from_canonical_request``), upstream responses and stream
chunks in (``to_canonical_response``, ``StreamDecoder``), client responses and chunks
out (``from_canonical_response``, ``StreamEncoder``). Client-side decoding raises
``InvalidRequest`` naming the field; upstream-side decoding raises ``UpstreamError``.
Pure: no I/O, and SSE framing plus the ``data: [DONE]`` line belong to other layers.

Top-level request fields fall in four groups:
- translated into the canonical Request (everything ``to_canonical_request`` reads);
- ``frequency_penalty`` / ``presence_penalty``: validated (-2..2) and carried in
  ``Request.metadata["openai_extra"]`` so an OpenAI-compatible upstream still honours
  them; other dialects ignore that key;
- ``REFUSED_FIELDS``: the legacy ``functions`` / ``function_call`` pair. Translating them
  would hand the client ``tool_calls`` where it waits for ``function_call``, so the
  client gets a clear 400 pointing at ``tools`` instead;
- everything else is dropped. ``IGNORED_FIELDS`` lists the OpenAI parameters we know
  and knowingly do not honour (logprobs, logit_bias, store, ...), so callers can log
  or report them; a field in neither list is dropped the same way, because new SDK
  releases add parameters faster than we can refuse them and a gateway that 400s on
  an unknown hint breaks clients for nothing.

``null`` for an optional field means "not given", since many clients serialise unset
options that way.

Where the wire cannot carry a canonical value it is dropped, not refused: upstream,
ThinkingPart and assistant images (no Chat Completions field), images inside tool
results (tool messages take text only), ToolResultPart.is_error, Request.top_k (OpenAI
rejects it); to clients, a thinking signature, Usage.estimated, and the "error" finish
reason, sent as "stop". Thinking travels as ``reasoning_content``, the extension
DeepSeek and vLLM use. Tool.strict from clients has no canonical home either.
"""
from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from gateway.canonical import (
    FinishReason, ImagePart, Message, Part, Request, Response, ResponseFormat,
    TextPart, ThinkingPart, Tool,
    ToolCallPart, ToolChoice, ToolResultPart, Usage,
)
from gateway.codecs.fields import (
    bad as _bad, is_int as _is_int, is_num as _is_num, opt_bool as _opt_bool,
    opt_number as _opt_number, opt_positive_int as _opt_positive_int, opt_str as _opt_str,
    req_str as _req_str, tool_items,
)
from gateway.errors import InvalidRequest, UpstreamError, UpstreamProtocolError

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
_PENALTIES = ("frequency_penalty", "presence_penalty")

# Upstream finish reasons, including aliases some OpenAI-compatible servers emit.
_FINISH_IN: dict[str, FinishReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter", "function_call": "tool_calls", "error": "error",
    "eos": "stop", "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
}
# OpenAI has no "error" finish reason and its SDK rejects unknown ones; reporting a
# failed generation to the client is the http layer's job, not the finish field's.
_FINISH_OUT: dict[str, str] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter", "error": "stop",
}
_DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.S)
_DETAILS = ("auto", "low", "high")


# ---------------------------------------------------------------- client request in

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
    extra = {k: v for k in _PENALTIES if (v := _opt_number(body, k, -2, 2)) is not None}
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
        stop=_stop(body.get("stop")), tools=tools,
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
    m = _DATA_URL.fullmatch(url)
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


def _stop(v: object) -> tuple[str, ...]:
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


# ---------------------------------------------------------------- upstream request out

def from_canonical_request(req: Request, upstream_model: str, *,
                           max_tokens_field: str = "max_tokens") -> dict:
    """Encode for an OpenAI-compatible upstream.

    ``max_tokens`` is the default limit field because every compatible server knows
    it; OpenAI's reasoning models accept only ``max_completion_tokens``, so a provider
    for them passes that name. ``top_k`` is dropped: OpenAI rejects it outright.
    """
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": [w for m in req.messages for w in _encode_message(m)],
    }
    if req.max_tokens is not None:
        body[max_tokens_field] = req.max_tokens
    for key in ("temperature", "top_p", "parallel_tool_calls", "user", "seed"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    if req.stop:
        body["stop"] = list(req.stop)
    if req.tools:
        body["tools"] = [_encode_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        tc = req.tool_choice
        body["tool_choice"] = ({"type": "function", "function": {"name": tc.name}}
                               if tc.mode == "tool" else tc.mode)
    if req.response_format is not None:
        body["response_format"] = _encode_format(req.response_format)
    extra = req.metadata.get("openai_extra")
    if isinstance(extra, dict):
        body.update((k, extra[k]) for k in _PENALTIES if _is_num(extra.get(k)))
    if req.stream:
        # Always ask for usage: billing needs it whether or not the client does.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _encode_tool(t: Tool) -> dict:
    described = {} if t.description is None else {"description": t.description}
    return {"type": "function", "function": {"name": t.name, **described, "parameters": t.parameters}}


def _encode_format(rf: ResponseFormat) -> dict:
    if rf.kind != "json_schema":
        return {"type": rf.kind}
    js: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema}
    if rf.strict is not None:
        js["strict"] = rf.strict
    return {"type": "json_schema", "json_schema": js}


def _named(d: dict, name: str | None) -> dict:
    if name is not None:
        d["name"] = name
    return d


def _text_content(texts: list[str]) -> str | list[dict]:
    # A lone string is what every compatible server accepts; several parts keep their
    # boundaries as an array rather than being glued into one string.
    if len(texts) <= 1:
        return texts[0] if texts else ""
    return [{"type": "text", "text": t} for t in texts]


def _encode_message(m: Message) -> list[dict]:
    texts = [p.text for p in m.parts if isinstance(p, TextPart)]
    if m.role == "system":
        return [_named({"role": "system", "content": _text_content(texts)}, m.name)]
    # Tool results become one OpenAI tool message each, ahead of any other content
    # the same canonical message carries (Anthropic puts them in user messages).
    out = [{"role": "tool", "tool_call_id": p.tool_call_id,
            "content": _text_content([c.text for c in p.content if isinstance(c, TextPart)])}
           for p in m.parts if isinstance(p, ToolResultPart)]
    if m.role == "user":
        rest = [p for p in m.parts if not isinstance(p, ToolResultPart)]
        if rest or not out:
            out.append(_named({"role": "user", "content": _user_content(rest)}, m.name))
    elif m.role == "assistant":
        calls = [{"id": p.id, "type": "function",
                  "function": {"name": p.name, "arguments": p.arguments}}
                 for p in m.parts if isinstance(p, ToolCallPart)]
        msg: dict[str, Any] = {"role": "assistant",
                               "content": _text_content(texts) if texts or not calls else None}
        if calls:
            msg["tool_calls"] = calls
        out.append(_named(msg, m.name))
    return out


def _user_content(parts: list[Part]) -> str | list[dict]:
    if all(isinstance(p, TextPart) for p in parts) and len(parts) <= 1:
        return parts[0].text if parts else ""  # type: ignore[union-attr]
    out: list[dict] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            url = p.url if p.url is not None else \
                f"data:{p.media_type or _sniff(p.data_b64 or '')};base64,{p.data_b64}"
            image: dict[str, Any] = {"url": url}
            if p.detail is not None:
                image["detail"] = p.detail
            out.append({"type": "image_url", "image_url": image})
    return out


def _sniff(data_b64: str) -> str:
    """Guess the media type of inline data that came without one, from its base64 prefix."""
    for prefix, kind in (("iVBOR", "image/png"), ("/9j/", "image/jpeg"),
                         ("R0lGOD", "image/gif"), ("UklGR", "image/webp")):
        if data_b64.startswith(prefix):
            return kind
    return "image/png"


# ---------------------------------------------------------------- responses

def _proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Chat Completions {problem}")


def _raise_embedded_error(body: dict) -> None:
    # Some servers report failures as a 200 body (or a stream chunk) with "error".
    err = body.get("error")
    if err is not None:
        msg = err.get("message") if isinstance(err, dict) else err
        raise UpstreamError(f"upstream reported an error: {msg if isinstance(msg, str) else 'unknown'}")


def _head(body: dict) -> tuple[str, str, int]:
    rid, model, created = body.get("id", ""), body.get("model", ""), body.get("created", 0)
    if not isinstance(rid, str) or not isinstance(model, str) or not _is_int(created):
        _proto("id and model must be strings and created an integer")
    return rid, model, created


def _finish_in(v: object, has_calls: bool) -> FinishReason:
    # Null comes from servers that leave it unset on a complete answer; "stop" beside
    # tool calls from Gemini's and Ollama's compatibility layers. Agent loops wait for
    # "tool_calls", so a natural stop that produced calls is reported as one.
    if v is not None and (not isinstance(v, str) or v not in _FINISH_IN):
        _proto(f"finish_reason {v!r} is not one we know")
    reason = _FINISH_IN[v] if v is not None else "stop"
    return "tool_calls" if reason == "stop" and has_calls else reason


def _count(d: dict, key: str, where: str, required: bool) -> int:
    v = d.get(key)
    if v is None and not required:
        return 0
    if not _is_int(v) or v < 0:
        _proto(f"{where}.{key} must be a non-negative integer")
    return v


def _usage_in(u: object) -> Usage:
    if not isinstance(u, dict):
        _proto("usage must be an object")
    pd, cd = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
    if not isinstance(pd, dict) or not isinstance(cd, dict):
        _proto("usage details must be objects")
    return Usage(
        input_tokens=_count(u, "prompt_tokens", "usage", True),
        output_tokens=_count(u, "completion_tokens", "usage", True),
        cached_input_tokens=_count(pd, "cached_tokens", "usage.prompt_tokens_details", False),
        reasoning_tokens=_count(cd, "reasoning_tokens", "usage.completion_tokens_details", False),
    )


def _usage_out(u: Usage) -> dict:
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}}


def _reasoning(d: dict, where: str) -> str:
    # DeepSeek and vLLM say reasoning_content, OpenRouter and newer vLLM say reasoning.
    for key in ("reasoning_content", "reasoning"):
        v = d.get(key)
        if v is not None and not isinstance(v, str):
            _proto(f"{where}.{key} must be a string")
        if v:
            return v
    return ""


def _opt_text(d: dict, key: str, where: str) -> str:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        _proto(f"{where}.{key} must be a string or null")
    return v or ""


def to_canonical_response(body: object) -> Response:
    """Decode an upstream's non-streamed Chat Completions response."""
    if not isinstance(body, dict):
        _proto("response is not a JSON object")
    _raise_embedded_error(body)
    rid, model, created = _head(body)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        _proto("response has no choices")
    choice = choices[0]
    msg = choice.get("message")
    if not isinstance(msg, dict):
        _proto("choices[0].message must be an object")
    parts: list[Part] = []
    if thinking := _reasoning(msg, "message"):
        parts.append(ThinkingPart(thinking))
    # A refusal is the model's answer to show the user; canonical has no other home.
    if text := _opt_text(msg, "content", "message") or _opt_text(msg, "refusal", "message"):
        parts.append(TextPart(text))
    calls = msg.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        _proto("message.tool_calls must be an array")
    parts.extend(_response_call(c, i) for i, c in enumerate(calls or ()))
    usage = body.get("usage")
    return Response(
        id=rid, model=model, created=created,
        message=Message("assistant", tuple(parts)),
        finish_reason=_finish_in(choice.get("finish_reason"), bool(calls)),
        usage=None if usage is None else _usage_in(usage),
    )


def _response_call(c: object, i: int) -> ToolCallPart:
    fn = c.get("function") if isinstance(c, dict) else None
    if not isinstance(fn, dict):
        _proto(f"message.tool_calls[{i}] must be an object with a function")
    call_id, name, args = c.get("id"), fn.get("name"), fn.get("arguments")
    if args is None:
        args = "{}"
    elif isinstance(args, dict):
        args = json.dumps(args)  # a few servers send the object, not its JSON text
    if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name
            and isinstance(args, str)):
        _proto(f"message.tool_calls[{i}] needs a string id, name and arguments")
    return ToolCallPart(call_id, name, args)


def from_canonical_response(resp: Response, model: str) -> dict:
    """Encode a client's Chat Completions response; ``model`` is the public id."""
    texts = [p.text for p in resp.message.parts if isinstance(p, TextPart)]
    thinking = "".join(p.text for p in resp.message.parts if isinstance(p, ThinkingPart))
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None,
                           "refusal": None}
    if thinking:
        msg["reasoning_content"] = thinking
    calls = resp.message.tool_calls
    if calls:
        msg["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}}
                             for c in calls]
    out: dict[str, Any] = {
        "id": resp.id, "object": "chat.completion", "created": resp.created, "model": model,
        "choices": [{"index": 0, "message": msg, "logprobs": None,
                     "finish_reason": _FINISH_OUT[resp.finish_reason]}],
    }
    if resp.usage is not None:
        out["usage"] = _usage_out(resp.usage)
    return out

