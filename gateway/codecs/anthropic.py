"""Anthropic Messages wire format <-> the canonical model, requests and whole responses.

Owns every non-streamed Messages shape: client request bodies in
(``to_canonical_request``), upstream request bodies out (``from_canonical_request``),
upstream responses in (``to_canonical_response``) and client responses out
(``from_canonical_response``). The stream halves live in ``anthropic_stream``. Client
decoding raises ``InvalidRequest`` naming the field; upstream decoding raises
``UpstreamError`` (``UpstreamProtocolError`` for a malformed body). Pure: no I/O.

Top-level request fields fall in four groups:
- translated into the canonical Request (everything ``to_canonical_request`` reads);
- Anthropic-only options carried in ``Request.metadata`` so an Anthropic upstream gets
  them back and every other upstream ignores them: ``thinking`` ("anthropic_thinking"),
  ``output_config`` minus its ``format`` ("anthropic_output_config"), and every
  ``cache_control`` marker ("anthropic_cache_control": the top-level one, and those on
  tools, system blocks and top-level message content blocks, by position: a message
  counted from the end of the conversation, so history put in front of the client's
  messages, as session memory does, cannot move a breakpoint);
- ``REFUSED_FIELDS``: ``mcp_servers``, whose tools Anthropic would run server-side and
  no other upstream can; server tools in ``tools`` are refused the same way;
- everything else is dropped. ``IGNORED_FIELDS`` lists the known ones we knowingly do
  not honour; an unknown field is dropped too, because the SDK grows parameters faster
  than a gateway can refuse them and a 400 on an unknown hint breaks clients for nothing.
``null`` for an optional field means "not given".

Content rules. A ``document`` block with a plain-text source (``text``, or ``content``
made of text) becomes a TextPart holding the document's text (title, context and
citation settings are dropped); PDF, URL and file sources are refused, because the
canonical model has no home for a document and other upstreams could not read one. A
``redacted_thinking`` block travels as a ThinkingPart with empty text whose signature is
``REDACTED_PREFIX`` + its data, so an Anthropic upstream gets it back byte for byte.
Image sources ``base64`` and ``url`` are supported; ``file`` is refused.

Towards an Anthropic upstream, where the canonical value has no Anthropic field:
system messages anywhere in the conversation are hoisted, in order, into ``system``;
consecutive tool messages merge into one user turn of tool_result blocks; thinking
without a signature (another vendor's reasoning, which Anthropic would reject) and
assistant images are dropped; ``temperature`` is clamped to Anthropic's 0..1; ``seed``
and message names are dropped; a missing ``max_tokens`` becomes ``DEFAULT_MAX_TOKENS`` because Anthropic
requires one; tool arguments that are not a JSON object become ``{}``. JSON mode:
``json_schema`` goes out as ``output_config.format`` (Anthropic's structured outputs);
``json_object`` has no Anthropic field, so a written instruction (``JSON_INSTRUCTION``)
is appended as the last system block.

Responses: stop reasons end_turn, stop_sequence and pause_turn mean "stop" (as does a
reason newer than this codec: the generation finished, and failing it would bill the
client for an error), max_tokens and model_context_window_exceeded "length", tool_use
"tool_calls", refusal "content_filter". Out, "stop" is always end_turn with a null
stop_sequence, since the canonical model does not carry which sequence matched. Upstream
blocks of types we do not know (server tool blocks) are skipped.

Usage: Anthropic's ``input_tokens`` excludes cache reads and writes; canonical
``input_tokens`` is the whole prompt, so both are added in and cache reads become
``cached_input_tokens``. Out, cached tokens are reported as ``cache_read_input_tokens``
and the rest as ``input_tokens``; cache writes are not tracked canonically, so
``cache_creation_input_tokens`` is always 0 on the way out.
"""
from __future__ import annotations

import json
from typing import Any, NoReturn

from gateway.canonical import (
    FinishReason,
    ImagePart,
    Message,
    Part,
    Request,
    Response,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    Usage,
)
from gateway.codecs.fields import (
    bad as _bad, is_int as _is_int, opt as _opt,
    opt_number as _opt_number, req_str as _req_str, tool_items,
)
from gateway.errors import InvalidRequest, UpstreamError, UpstreamProtocolError

MAX_MESSAGES = 100_000
MAX_TOOLS = 1_000
DEFAULT_MAX_TOKENS = 4096
REDACTED_PREFIX = "anthropic-redacted-thinking:"
JSON_INSTRUCTION = ("Respond with a single JSON object and nothing else: no prose before or "
                    "after it and no code fences.")

IGNORED_FIELDS = frozenset({
    "service_tier", "container", "context_management", "diagnostics", "inference_geo",
    "speed", "user_profile_id", "workspace_id", "betas",
})
REFUSED_FIELDS = {
    "mcp_servers": "asks Anthropic to run MCP tools server-side, which this gateway does not "
                   "support; declare the tools in tools and run them yourself",
}

FINISH_IN: dict[str, FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}
# Anthropic has no "error" stop reason; a failed generation is the http layer's to report.
FINISH_OUT: dict[str, str] = {
    "stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
    "content_filter": "refusal", "error": "end_turn",
}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


# ---------------------------------------------------------------- shared helpers

def _args_object(arguments: str) -> dict:
    """Tool arguments as the object Anthropic's ``input`` must be ({} if they are not one)."""
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _args_text(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- client request in

def to_canonical_request(body: object, *, require_max_tokens: bool = True) -> Request:
    """Decode a client's (already JSON-parsed) Messages request body.

    ``require_max_tokens=False`` serves /v1/messages/count_tokens, whose body is a
    Messages request without the output limit.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for key, problem in REFUSED_FIELDS.items():
        if body.get(key) is not None:
            _bad(key, problem)
    model = _req_str(body, "model", "")
    max_tokens = body.get("max_tokens")
    if max_tokens is None and not require_max_tokens:
        pass
    elif not _is_int(max_tokens) or max_tokens <= 0:
        _bad("max_tokens", "is required and must be a positive integer")
    caches: dict[str, Any] = {}
    top_cache = _cache_control(body, "")
    if top_cache is not None:
        caches["top"] = top_cache
    messages = _system(body.get("system"), caches) + _messages(body.get("messages"), caches)
    tools = _tools(body.get("tools"), caches)
    tool_choice, parallel = _tool_choice(body.get("tool_choice"), tools)
    top_k = _opt(body, "top_k", "", int, "a non-negative integer")
    if top_k is not None and top_k < 0:
        _bad("top_k", "must be a non-negative integer")
    meta = _opt(body, "metadata", "", dict, "an object") or {}
    metadata: dict[str, Any] = {}
    thinking = _thinking(body.get("thinking"))
    if thinking is not None:
        metadata["anthropic_thinking"] = thinking
    output_config, response_format = _output_config(body.get("output_config"))
    if output_config:
        metadata["anthropic_output_config"] = output_config
    if caches:
        metadata["anthropic_cache_control"] = caches
    return Request(
        model=model, messages=messages, max_tokens=max_tokens,
        temperature=_opt_number(body, "temperature", 0, 1), top_p=_opt_number(body, "top_p", 0, 1),
        top_k=top_k, stop=_stop(body.get("stop_sequences")), tools=tools,
        tool_choice=tool_choice, parallel_tool_calls=parallel, response_format=response_format,
        stream=bool(_opt(body, "stream", "", bool, "a boolean")),
        user=_opt(meta, "user_id", "metadata", str, "a string"), metadata=metadata,
    )


def _cache_control(d: dict, where: str) -> dict | None:
    return _opt(d, "cache_control", where, dict, "an object")


def _mark(caches: dict, kind: str, position: list, block: dict, where: str) -> None:
    cc = _cache_control(block, where)
    if cc is not None:
        caches.setdefault(kind, []).append([*position, cc])


def _system(v: object, caches: dict) -> tuple[Message, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (Message("system", (TextPart(v),)),)
    if not isinstance(v, list):
        _bad("system", "must be a string or an array of text blocks")
    parts = []
    for j, b in enumerate(v):
        where = f"system[{j}]"
        if not isinstance(b, dict) or b.get("type") != "text":
            _bad(where, "must be a text block ({\"type\": \"text\", \"text\": ...})")
        parts.append(TextPart(_req_str(b, "text", where, empty_ok=True)))
        _mark(caches, "system", [j], b, where)
    return (Message("system", tuple(parts)),) if parts else ()


def _messages(v: object, caches: dict) -> tuple[Message, ...]:
    if not isinstance(v, list) or not v:
        _bad("messages", "is required and must be a non-empty array of message objects")
    if len(v) > MAX_MESSAGES:
        _bad("messages", f"holds {len(v)} messages; at most {MAX_MESSAGES} are allowed")
    out = []
    for i, m in enumerate(v):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            _bad(where, "must be an object")
        role = m.get("role")
        if role not in ("user", "assistant"):
            _bad(f"{where}.role", "must be 'user' or 'assistant' (the system prompt goes in system)")
        content = m.get("content")
        cw = f"{where}.content"
        if isinstance(content, str):
            parts: tuple[Part, ...] = (TextPart(content),)
        elif isinstance(content, list):
            parts = tuple(_block(b, role, f"{cw}[{j}]") for j, b in enumerate(content))
            for j, b in enumerate(content):
                # Counted from the end: history a session layer puts in front of
                # the client's messages must not move a breakpoint.
                _mark(caches, "blocks", [i - len(v), j], b, f"{cw}[{j}]")
        else:
            _bad(cw, "must be a string or an array of content blocks")
        out.append(Message(role, parts))
    return tuple(out)


_USER_BLOCKS = ("text", "image", "document", "tool_result")
_ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")


def _block(b: object, role: str, where: str) -> Part:
    if not isinstance(b, dict):
        _bad(where, "must be an object")
    kind = b.get("type")
    allowed = _USER_BLOCKS if role == "user" else _ASSISTANT_BLOCKS
    if kind not in allowed:
        if isinstance(kind, str) and kind in _USER_BLOCKS + _ASSISTANT_BLOCKS:
            _bad(f"{where}.type", f"'{kind}' blocks cannot appear in a {role} message")
        _bad(f"{where}.type", f"must be one of {', '.join(allowed)} in a {role} message "
                              "(server tool blocks and other types are not supported)")
    if kind == "text":
        return TextPart(_req_str(b, "text", where, empty_ok=True))
    if kind == "image":
        return _image(b, where)
    if kind == "document":
        return _document(b, where)
    if kind == "tool_result":
        return _tool_result(b, where)
    if kind == "tool_use":
        call_id, name = _req_str(b, "id", where), _req_str(b, "name", where)
        args = b.get("input")
        if not isinstance(args, dict):
            _bad(f"{where}.input", "is required and must be an object")
        return ToolCallPart(call_id, name, _args_text(args))
    if kind == "thinking":
        text = _req_str(b, "thinking", where, empty_ok=True)
        signature = _opt(b, "signature", where, str, "a string")
        return ThinkingPart(text, signature or None)
    return ThinkingPart("", REDACTED_PREFIX + _req_str(b, "data", where, empty_ok=True))


def _image(b: dict, where: str) -> ImagePart:
    src = b.get("source")
    sw = f"{where}.source"
    if not isinstance(src, dict):
        _bad(sw, "is required and must be an object")
    kind = src.get("type")
    if kind == "base64":
        media = _req_str(src, "media_type", sw)
        return ImagePart(data_b64=_req_str(src, "data", sw), media_type=media)
    if kind == "url":
        return ImagePart(url=_req_str(src, "url", sw))
    _bad(f"{sw}.type", "must be 'base64' or 'url' (file sources are not supported)")


def _document(b: dict, where: str) -> TextPart:
    src = b.get("source")
    sw = f"{where}.source"
    if not isinstance(src, dict):
        _bad(sw, "is required and must be an object")
    kind = src.get("type")
    if kind == "text":
        return TextPart(_req_str(src, "data", sw, empty_ok=True))
    if kind == "content":
        content = src.get("content")
        if isinstance(content, str):
            return TextPart(content)
        if isinstance(content, list):
            texts = []
            for j, p in enumerate(content):
                if not isinstance(p, dict) or p.get("type") != "text":
                    _bad(f"{sw}.content[{j}]", "must be a text block: only text documents are supported")
                texts.append(_req_str(p, "text", f"{sw}.content[{j}]", empty_ok=True))
            return TextPart("\n".join(texts))
        _bad(f"{sw}.content", "must be a string or an array of text blocks")
    _bad(f"{sw}.type", "must be 'text' or 'content': PDF, URL and file documents cannot be "
                       "carried to every upstream this gateway routes to; send the document's text")


def _tool_result(b: dict, where: str) -> ToolResultPart:
    call_id = _req_str(b, "tool_use_id", where)
    is_error = bool(_opt(b, "is_error", where, bool, "a boolean"))
    content = b.get("content")
    cw = f"{where}.content"
    parts: list[TextPart | ImagePart] = []
    if isinstance(content, str):
        parts.append(TextPart(content))
    elif isinstance(content, list):
        for j, p in enumerate(content):
            pw = f"{cw}[{j}]"
            kind = p.get("type") if isinstance(p, dict) else None
            if kind == "text":
                parts.append(TextPart(_req_str(p, "text", pw, empty_ok=True)))
            elif kind == "image":
                parts.append(_image(p, pw))
            elif kind == "document":
                parts.append(_document(p, pw))
            else:
                _bad(pw, "must be a text, image or text document block")
    elif content is not None:
        _bad(cw, "must be a string or an array of content blocks")
    return ToolResultPart(call_id, tuple(parts), is_error)


def _stop(v: object) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, list) and all(isinstance(s, str) for s in v):
        return tuple(v)
    _bad("stop_sequences", "must be an array of strings")


def _tools(v: object, caches: dict) -> tuple[Tool, ...]:
    out = []
    for i, (where, t) in enumerate(tool_items(v, MAX_TOOLS)):
        kind = t.get("type")
        if kind is not None and kind != "custom":
            _bad(f"{where}.type", f"{kind!r} is an Anthropic-defined or server tool, which this "
                                  "gateway does not support; declare a custom tool with input_schema")
        name = _req_str(t, "name", where)
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            _bad(f"{where}.input_schema", "is required and must be a JSON schema object")
        out.append(Tool(name, _opt(t, "description", where, str, "a string"), schema))
        cc = _cache_control(t, where)
        if cc is not None:
            caches.setdefault("tools", []).append([i, cc])
    return tuple(out)


def _tool_choice(v: object, tools: tuple[Tool, ...]) -> tuple[ToolChoice | None, bool | None]:
    if v is None:
        return None, None
    if not isinstance(v, dict):
        _bad("tool_choice", "must be an object with a type")
    kind = v.get("type")
    disable = _opt(v, "disable_parallel_tool_use", "tool_choice", bool, "a boolean")
    parallel = None if disable is None else not disable
    if kind == "auto" or kind == "none":
        return ToolChoice(kind), parallel
    if kind == "any":
        return ToolChoice("required"), parallel
    if kind == "tool":
        name = _req_str(v, "name", "tool_choice")
        if all(t.name != name for t in tools):
            _bad("tool_choice.name", f"names '{name}', which is not among tools")
        return ToolChoice("tool", name), parallel
    _bad("tool_choice.type", "must be one of auto, any, tool, none")


def _thinking(v: object) -> dict | None:
    if v is None:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("type"), str):
        _bad("thinking", "must be an object with a type (enabled, disabled or adaptive)")
    if v["type"] == "enabled":
        budget = v.get("budget_tokens")
        if not _is_int(budget) or budget <= 0:
            _bad("thinking.budget_tokens", "is required with type 'enabled' and must be a positive integer")
    return dict(v)


def _output_config(v: object) -> tuple[dict, ResponseFormat | None]:
    if v is None:
        return {}, None
    if not isinstance(v, dict):
        _bad("output_config", "must be an object")
    rest = {k: x for k, x in v.items() if k != "format" and x is not None}
    fmt = v.get("format")
    if fmt is None:
        return rest, None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        _bad("output_config.format", "must be {\"type\": \"json_schema\", \"schema\": {...}}")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        _bad("output_config.format.schema", "is required and must be a JSON schema object")
    return rest, ResponseFormat("json_schema", schema)


# ---------------------------------------------------------------- upstream request out

def from_canonical_request(req: Request, upstream_model: str) -> dict:
    """Encode for an Anthropic upstream (see the module docstring for what cannot go)."""
    caches = req.metadata.get("anthropic_cache_control")
    caches = caches if isinstance(caches, dict) else {}
    system_marks = {m[0]: m[1] for m in caches.get("system", ()) if isinstance(m, list) and len(m) == 2}
    marks = {(m[0], m[1]): m[2] for m in caches.get("blocks", ())
             if isinstance(m, list) and len(m) == 3}
    system: list[dict] = []
    messages: list[dict] = []
    position = -sum(1 for m in req.messages if m.role != "system")
    for m in req.messages:
        if m.role == "system":
            for p in m.parts:   # system messages hold text parts only
                system.append({"type": "text", "text": p.text})
                if len(system) - 1 in system_marks:
                    system[-1]["cache_control"] = system_marks[len(system) - 1]
            continue
        blocks = [b for j, p in enumerate(m.parts)
                  if not (m.role == "assistant" and isinstance(p, ImagePart))
                  and (b := _encode_part(p, marks.get((position, j)))) is not None]
        position += 1
        role = "assistant" if m.role == "assistant" else "user"
        if role == "user":
            # Anthropic wants a turn's tool results first, and all of them in one turn.
            blocks.sort(key=lambda b: b["type"] != "tool_result")
            prev = messages[-1] if messages else None
            if m.role == "tool" and prev is not None and prev["role"] == "user" and \
                    isinstance(prev["content"], list) and \
                    all(b["type"] == "tool_result" for b in prev["content"]):
                prev["content"].extend(blocks)
                continue
        messages.append({"role": role, "content": _content(blocks, m.role == "tool")})
    rf = req.response_format
    if rf is not None and rf.kind == "json_object":
        system.append({"type": "text", "text": JSON_INSTRUCTION})
    body: dict[str, Any] = {"model": upstream_model, "messages": messages,
                            "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = _content(system, False)
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)
    for key in ("top_p", "top_k"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.tools:
        tool_marks = {m[0]: m[1] for m in caches.get("tools", ()) if isinstance(m, list) and len(m) == 2}
        body["tools"] = [_encode_tool(t, tool_marks.get(i)) for i, t in enumerate(req.tools)]
        choice = _encode_choice(req.tool_choice, req.parallel_tool_calls)
        if choice is not None:
            body["tool_choice"] = choice
    if req.user is not None:
        body["metadata"] = {"user_id": req.user}
    thinking = req.metadata.get("anthropic_thinking")
    if isinstance(thinking, dict):
        body["thinking"] = thinking
    output_config = req.metadata.get("anthropic_output_config")
    output_config = dict(output_config) if isinstance(output_config, dict) else {}
    if rf is not None and rf.kind == "json_schema":
        output_config["format"] = {"type": "json_schema", "schema": rf.schema}
    if output_config:
        body["output_config"] = output_config
    if isinstance(caches.get("top"), dict):
        body["cache_control"] = caches["top"]
    if req.stream:
        body["stream"] = True
    return body


def _content(blocks: list[dict], force_list: bool) -> str | list[dict]:
    # A lone unmarked text block goes as a string, the shape most clients send.
    if not force_list and len(blocks) == 1 and blocks[0]["type"] == "text" and \
            "cache_control" not in blocks[0]:
        return blocks[0]["text"]
    return blocks


def _encode_part(p: Part, cc: dict | None) -> dict | None:
    block: dict[str, Any]
    if isinstance(p, TextPart):
        block = {"type": "text", "text": p.text}
    elif isinstance(p, ImagePart):
        block = {"type": "image", "source": _encode_source(p)}
    elif isinstance(p, ToolCallPart):
        block = {"type": "tool_use", "id": p.id, "name": p.name, "input": _args_object(p.arguments)}
    elif isinstance(p, ToolResultPart):
        block = {"type": "tool_result", "tool_use_id": p.tool_call_id}
        if p.content:
            block["content"] = [{"type": "text", "text": c.text} if isinstance(c, TextPart)
                                else {"type": "image", "source": _encode_source(c)}
                                for c in p.content]
        if p.is_error:
            block["is_error"] = True
    elif isinstance(p, ThinkingPart):
        if p.signature is None:
            return None
        if p.signature.startswith(REDACTED_PREFIX) and not p.text:
            block = {"type": "redacted_thinking", "data": p.signature[len(REDACTED_PREFIX):]}
        else:
            block = {"type": "thinking", "thinking": p.text, "signature": p.signature}
    else:
        return None
    if cc is not None:
        block["cache_control"] = cc
    return block


def _encode_source(p: ImagePart) -> dict:
    if p.url is not None:
        return {"type": "url", "url": p.url}
    return {"type": "base64", "media_type": p.media_type or _sniff(p.data_b64 or ""),
            "data": p.data_b64}


def _sniff(data_b64: str) -> str:
    for prefix, kind in (("iVBOR", "image/png"), ("/9j/", "image/jpeg"),
                         ("R0lGOD", "image/gif"), ("UklGR", "image/webp")):
        if data_b64.startswith(prefix):
            return kind
    return _IMAGE_TYPES[1]


def _encode_tool(t: Tool, cc: dict | None) -> dict:
    out: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        out["description"] = t.description
    out["input_schema"] = t.parameters
    if cc is not None:
        out["cache_control"] = cc
    return out


def _encode_choice(tc: ToolChoice | None, parallel: bool | None) -> dict | None:
    if tc is None and parallel is None:
        return None
    mode = tc.mode if tc is not None else "auto"
    out: dict[str, Any] = {"type": {"required": "any"}.get(mode, mode)}
    if tc is not None and tc.mode == "tool":
        out["name"] = tc.name
    if parallel is not None and mode != "none":
        out["disable_parallel_tool_use"] = not parallel
    return out


# ---------------------------------------------------------------- responses

def _proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Anthropic Messages {problem}")


def raise_if_error(body: dict) -> None:
    """An ``{"type": "error"}`` body (or stream event) is the upstream failing us."""
    if body.get("type") != "error":
        return
    err = body.get("error")
    kind = err.get("type") if isinstance(err, dict) else None
    msg = err.get("message") if isinstance(err, dict) else None
    raise UpstreamError(f"upstream reported an error: {kind if isinstance(kind, str) else 'error'}: "
                        f"{msg if isinstance(msg, str) else 'no message'}")


def count(d: dict, key: str, where: str, required: bool) -> int:
    v = d.get(key)
    if v is None and not required:
        return 0
    if not _is_int(v) or v < 0:
        _proto(f"{where}.{key} must be a non-negative integer")
    return v


def usage_in(u: object, *, output_required: bool = True) -> Usage:
    if not isinstance(u, dict):
        _proto("usage must be an object")
    fresh = count(u, "input_tokens", "usage", True)
    read = count(u, "cache_read_input_tokens", "usage", False)
    written = count(u, "cache_creation_input_tokens", "usage", False)
    return Usage(input_tokens=fresh + read + written, cached_input_tokens=read,
                 output_tokens=count(u, "output_tokens", "usage", output_required))


def usage_out(u: Usage) -> dict:
    cached = min(u.cached_input_tokens, u.input_tokens)
    return {"input_tokens": u.input_tokens - cached, "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def finish_in(v: object) -> FinishReason:
    # Null comes from a message cut short; an unknown reason from a newer API version.
    # Neither is worth failing a finished generation over.
    if v is not None and not isinstance(v, str):
        _proto("stop_reason must be a string or null")
    return FINISH_IN.get(v, "stop") if v is not None else "stop"


def response_block(b: object, where: str) -> Part | None:
    """One upstream content block; None for block types we do not carry (server tools)."""
    if not isinstance(b, dict):
        _proto(f"{where} must be an object")
    kind = b.get("type")
    if kind == "text":
        text = b.get("text")
        if not isinstance(text, str):
            _proto(f"{where}.text must be a string")
        return TextPart(text)
    if kind == "thinking":
        text, sig = b.get("thinking"), b.get("signature")
        if not isinstance(text, str) or (sig is not None and not isinstance(sig, str)):
            _proto(f"{where} thinking and signature must be strings")
        return ThinkingPart(text, sig or None)
    if kind == "redacted_thinking":
        data = b.get("data")
        if not isinstance(data, str):
            _proto(f"{where}.data must be a string")
        return ThinkingPart("", REDACTED_PREFIX + data)
    if kind == "tool_use":
        call_id, name, args = b.get("id"), b.get("name"), b.get("input")
        if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name
                and isinstance(args, dict)):
            _proto(f"{where} needs a string id and name and an object input")
        return ToolCallPart(call_id, name, _args_text(args))
    if not isinstance(kind, str):
        _proto(f"{where}.type must be a string")
    return None


def to_canonical_response(body: object) -> Response:
    """Decode an upstream's non-streamed Messages response."""
    if not isinstance(body, dict):
        _proto("response is not a JSON object")
    raise_if_error(body)
    rid, model, content = body.get("id"), body.get("model"), body.get("content")
    if not isinstance(rid, str) or not isinstance(model, str):
        _proto("response id and model must be strings")
    if not isinstance(content, list):
        _proto("response content must be an array")
    parts = [p for i, b in enumerate(content) if (p := response_block(b, f"content[{i}]")) is not None]
    usage = body.get("usage")
    return Response(id=rid, model=model, message=Message("assistant", tuple(parts)),
                    finish_reason=finish_in(body.get("stop_reason")),
                    usage=None if usage is None else usage_in(usage))


def encode_block(p: Part) -> dict | None:
    """A response content block for a client; None for parts a response cannot hold."""
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if isinstance(p, ThinkingPart):
        if p.signature is not None and p.signature.startswith(REDACTED_PREFIX) and not p.text:
            return {"type": "redacted_thinking", "data": p.signature[len(REDACTED_PREFIX):]}
        return {"type": "thinking", "thinking": p.text, "signature": p.signature or ""}
    if isinstance(p, ToolCallPart):
        return {"type": "tool_use", "id": p.id, "name": p.name, "input": _args_object(p.arguments)}
    return None


def from_canonical_response(resp: Response, model: str) -> dict:
    """Encode a client's Messages response; ``model`` is the public id."""
    return {
        "id": resp.id, "type": "message", "role": "assistant", "model": model,
        "content": [b for p in resp.message.parts if (b := encode_block(p)) is not None],
        "stop_reason": FINISH_OUT[resp.finish_reason], "stop_sequence": None,
        "usage": usage_out(resp.usage or Usage()),
    }
