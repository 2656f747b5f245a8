"""Anthropic Messages requests from clients -> canonical (dialect rules: the package
docstring)."""
from __future__ import annotations

import json
from typing import Any

from gateway.canonical import (
    ImagePart, Message, Part, Request, ResponseFormat, TextPart, ThinkingPart, Tool,
    ToolCallPart, ToolChoice, ToolResultPart,
)
from gateway.codecs.fields import (
    bad as _bad, is_int as _is_int, opt as _opt, opt_number as _opt_number, req_str as
    _req_str, tool_items,
)
from gateway.codecs.hosted import KEY as HOSTED_KEY, hosted_tool
from gateway.errors import InvalidRequest

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



def args_object(arguments: str) -> dict:
    """Tool arguments as the object Anthropic's ``input`` must be ({} if they are not one)."""
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def args_text(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))



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
    tools, hosted = _tools(body.get("tools"), caches)
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
    if hosted:
        metadata[HOSTED_KEY] = hosted
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
    parts = _system_text(v, "system")
    for j, b in enumerate(v if isinstance(v, list) else ()):
        _mark(caches, "system", [j], b, f"system[{j}]")
    return (Message("system", parts),) if parts else ()


def _messages(v: object, caches: dict) -> tuple[Message, ...]:
    if not isinstance(v, list) or not v:
        _bad("messages", "is required and must be a non-empty array of message objects")
    if len(v) > MAX_MESSAGES:
        _bad("messages", f"holds {len(v)} messages; at most {MAX_MESSAGES} are allowed")
    if all(isinstance(m, dict) and m.get("role") == "system" for m in v):
        _bad("messages[0].role", "is 'system', and messages holds no user or assistant turn: "
                                 "a conversation needs at least one")
    out = []
    # Breakpoints count conversation turns (not system messages) from the end: history a
    # session layer puts in front of the client's messages must not move one.
    position = -sum(1 for m in v if not (isinstance(m, dict) and m.get("role") == "system"))
    for i, m in enumerate(v):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            _bad(where, "must be an object")
        role = m.get("role")
        if role == "system":
            # A mid-conversation instruction (Claude Code sends them): kept in place.
            parts = _system_text(m.get("content"), f"{where}.content")
            if not parts:
                _bad(f"{where}.content", "must not be empty")
            out.append(Message("system", parts))
            continue
        if role not in ("user", "assistant"):
            _bad(f"{where}.role", "must be 'user', 'assistant' or 'system'")
        content = m.get("content")
        cw = f"{where}.content"
        if isinstance(content, str):
            parts: tuple[Part, ...] = (TextPart(content),)
        elif isinstance(content, list):
            parts = tuple(_block(b, role, f"{cw}[{j}]") for j, b in enumerate(content))
            for j, b in enumerate(content):
                _mark(caches, "blocks", [position, j], b, f"{cw}[{j}]")
        else:
            _bad(cw, "must be a string or an array of content blocks")
        position += 1
        out.append(Message(role, parts))
    return tuple(out)


def _system_text(content: object, where: str) -> tuple[TextPart, ...]:
    """The text of a system prompt or system message: a string or text blocks."""
    if isinstance(content, str):
        return (TextPart(content),)
    if not isinstance(content, list):
        _bad(where, "must be a string or an array of text blocks")
    parts = []
    for j, b in enumerate(content):
        if not isinstance(b, dict) or b.get("type") != "text":
            _bad(f"{where}[{j}]", "must be a text block ({\"type\": \"text\", \"text\": ...})")
        parts.append(TextPart(_req_str(b, "text", f"{where}[{j}]", empty_ok=True)))
    return tuple(parts)


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
        return ToolCallPart(call_id, name, args_text(args))
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


def _tools(v: object, caches: dict) -> tuple[tuple[Tool, ...], list[dict]]:
    out: list[Tool] = []
    hosted: list[dict] = []
    for where, t in tool_items(v, MAX_TOOLS):
        kind = t.get("type")
        if kind is not None and kind != "custom":
            if not isinstance(kind, str) or not kind:
                _bad(f"{where}.type", "must be a string")
            # Anthropic-defined and server tools (web_search_*, code_execution_*, bash_*,
            # ...): an Anthropic route gets them as sent, other routes follow the
            # model's hosted_tools policy (codecs/hosted.py).
            hosted.append(hosted_tool("anthropic", _req_str(t, "name", where), t))
            continue
        name = _req_str(t, "name", where)
        schema = t.get("input_schema")
        if not isinstance(schema, dict):
            _bad(f"{where}.input_schema", "is required and must be a JSON schema object")
        out.append(Tool(name, _opt(t, "description", where, str, "a string"), schema))
        cc = _cache_control(t, where)
        if cc is not None:
            caches.setdefault("tools", []).append([len(out) - 1, cc])
    return tuple(out), hosted


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


