"""OpenAI Responses API wire format <-> the canonical model, client side only.

Owns the Responses shapes a client sends: request bodies in (``to_canonical_request``)
and the conversation kept for ``previous_response_id`` chaining (``input_items``,
``output_as_input``, ``history_messages``). The chain is stored as Responses input
items, not as canonical values, so replaying it runs through this same validated
decoder. The Response object out lives in openai_responses_out (``from_canonical_response``
and ``request_echo`` are re-exported here) and its stream in openai_responses_stream.
No upstream speaks this dialect through us, so there is no upstream half. Pure: no I/O.

Rules chosen where the wire and the canonical model do not meet one to one:
- ``instructions`` becomes the first (system) message. As on OpenAI it is not carried
  along a ``previous_response_id`` chain: the stored conversation is input items only.
- Input items: ``message`` (roles user, system, developer, assistant; a missing
  ``type`` with a ``role`` means message), ``function_call``, ``function_call_output``
  and ``reasoning``. Consecutive assistant-side items (assistant messages,
  function calls, reasoning) form one canonical assistant turn, in their order; each
  function_call_output becomes one "tool" message. A reasoning item becomes a
  ThinkingPart (content texts, else summary texts joined by blank lines;
  ``encrypted_content`` is the signature) and is dropped when it holds neither.
  ``item_reference`` and built-in tool items are refused: there is no item store to
  resolve them from and no built-in tool to have produced them.
- Images: ``input_image`` with ``image_url`` (https or data: URL); ``file_id`` and
  ``input_file`` / ``input_audio`` are refused (this gateway has no Files API).
  Detail "original" is sent on as "high", the closest detail every upstream knows.
- Tools: function tools; ``strict`` is echoed but has no canonical home.
  ``namespace`` tools group function tools under a name: they go up flattened as
  ``<namespace>__<name>`` (openai_responses_out.namespaced) and calls come back under
  the declared name and namespace. Hosted tools (``HOSTED_TOOLS``: web_search,
  file_search, code_interpreter, ...) are carried for the routing policy
  (codecs/hosted.py); client-run built-ins (local_shell, apply_patch, custom, ...)
  are refused with a 400 that says they are not supported here. ``tool_choice`` takes "auto" | "none" |
  "required" | {"type": "function", "name"}; other forms are refused.
- ``text.format`` maps to ResponseFormat; ``text.verbosity`` is echoed, not honoured.
- ``truncation``: "disabled" and "auto" are accepted; nothing is ever dropped from the
  input (an over-long context is the upstream's 400), so responses echo "disabled".
  ``include``: validated (an array of strings) and ignored; reasoning items carry
  ``encrypted_content`` whenever the upstream gave a signature. ``reasoning``:
  validated, echoed for known values, not honoured (canonical has no effort knob).
- Refused: ``background`` true, ``conversation`` and ``prompt`` (objects this gateway
  does not keep). Other unknown fields are dropped, as in openai_chat.
- Finish reasons: length -> status "incomplete" (reason max_output_tokens),
  content_filter -> "incomplete" (reason content_filter), error -> "failed" with a
  server_error; stop and tool_calls -> "completed".
"""
from __future__ import annotations

from dataclasses import replace

from gateway.canonical import (
    ImagePart, Message, Part, Request, ResponseFormat, TextPart,
    ThinkingPart, Tool, ToolCallPart, ToolChoice, ToolResultPart,
)
from gateway.codecs.fields import (
    bad as _bad, opt_bool as _opt_bool, opt_number as _opt_number,
    opt_positive_int as _opt_positive_int, opt_str as _opt_str, req_str as _req_str,
    tool_items,
)
from gateway.codecs.hosted import KEY as HOSTED_KEY, hosted_tool
from gateway.codecs.openai_chat.request import DATA_URL
from gateway.codecs.openai_responses_out import (  # re-exported: one API per dialect
    from_canonical_response, namespaced, request_echo,
)
from gateway.errors import InvalidRequest

__all__ = [
    "to_canonical_request", "previous_response_id", "wants_store", "input_items",
    "output_as_input", "history_messages", "from_canonical_response", "request_echo",
]

MAX_INPUT_ITEMS = 10_000
MAX_TOOLS = 128
_METADATA_PAIRS, _METADATA_KEY, _METADATA_VALUE = 16, 64, 512

REFUSED_FIELDS = {
    "background": "is not supported: this gateway answers every request in the foreground",
    "conversation": "is not supported: chain responses with previous_response_id instead",
    "prompt": "(stored prompt templates) is not supported by this gateway; send input",
}
HOSTED_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_2025_08_26",
    "web_search_preview_2025_03_11", "file_search", "code_interpreter", "computer",
    "computer_use_preview", "image_generation", "mcp", "tool_search",
})
BUILTIN_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_2025_08_26",
    "web_search_preview_2025_03_11", "file_search", "code_interpreter", "computer",
    "computer_use_preview", "image_generation", "mcp", "local_shell", "shell",
    "apply_patch", "custom", "namespace", "tool_search", "programmatic_tool_calling",
})
_DETAILS = {"auto": "auto", "low": "low", "high": "high", "original": "high"}


# ---------------------------------------------------------------- request in

def to_canonical_request(body: object, *, history: tuple[Message, ...] = ()) -> Request:
    """Decode a Responses request; ``history`` is the conversation of the response
    named by ``previous_response_id``, which the caller has already resolved."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for key, problem in REFUSED_FIELDS.items():
        if body.get(key) not in (None, False):
            _bad(key, problem)
    model = _req_str(body, "model", "")
    instructions = _opt_str(body, "instructions")
    previous_response_id(body)
    flat = {(ns, name): f for f, (ns, name) in namespaced(body.get("tools")).items()}
    messages = _input(body.get("input"), flat)
    if not messages and not history:
        _bad("input", "is required and must be a non-empty string or array of items "
                      "(unless previous_response_id names a conversation to continue)")
    tools, hosted = _tools(body.get("tools"))
    _echo_checks(body)
    prefix = (Message("system", (TextPart(instructions),)),) if instructions else ()
    return Request(
        model=model, messages=prefix + tuple(history) + messages,
        max_tokens=_opt_positive_int(body, "max_output_tokens"),
        temperature=_opt_number(body, "temperature", 0, 2),
        top_p=_opt_number(body, "top_p", 0, 1),
        tools=tools, tool_choice=_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=_opt_bool(body, "parallel_tool_calls"),
        response_format=_text_format(body.get("text")),
        stream=bool(_opt_bool(body, "stream")), user=_opt_str(body, "user"),
        metadata={HOSTED_KEY: hosted} if hosted else {},
    )


def previous_response_id(body: dict) -> str | None:
    v = body.get("previous_response_id")
    if v is not None and (not isinstance(v, str) or not v):
        _bad("previous_response_id", "must be a non-empty string")
    return v


def wants_store(body: dict) -> bool:
    """``store`` defaults to true, as on OpenAI."""
    return _opt_bool(body, "store") is not False


def _echo_checks(body: dict) -> None:
    """Fields that only shape the echo: checked so the echo is always a valid Response."""
    _opt_bool(body, "store")
    md = body.get("metadata")
    if md is not None:
        if not isinstance(md, dict) or len(md) > _METADATA_PAIRS:
            _bad("metadata", f"must be an object of at most {_METADATA_PAIRS} pairs")
        for k, v in md.items():
            if not isinstance(k, str) or len(k) > _METADATA_KEY or not isinstance(v, str) or len(v) > _METADATA_VALUE:
                _bad("metadata", f"keys must be at most {_METADATA_KEY} characters and values "
                                 f"strings of at most {_METADATA_VALUE}")
    r = body.get("reasoning")
    if r is not None:
        if not isinstance(r, dict):
            _bad("reasoning", "must be an object")
        for key in ("effort", "summary", "generate_summary"):
            _opt_str(r, key, "reasoning")
    t = body.get("truncation")
    if t is not None and t not in ("auto", "disabled"):
        _bad("truncation", "must be 'auto' or 'disabled'")
    inc = body.get("include")
    if inc is not None and not (isinstance(inc, list) and all(isinstance(s, str) for s in inc)):
        _bad("include", "must be an array of strings")


def _input(v: object, flat: dict[tuple[str, str], str]) -> tuple[Message, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (Message("user", (TextPart(v),)),)
    if not isinstance(v, list):
        _bad("input", "must be a string or an array of input items")
    return _items(v, "input", flat)


def _items(v: list, where: str, flat: dict[tuple[str, str], str] | None = None) -> tuple[Message, ...]:
    """``flat`` maps a (namespace, name) a function_call item names to its flat name."""
    if len(v) > MAX_INPUT_ITEMS:
        _bad(where, f"holds {len(v)} items; at most {MAX_INPUT_ITEMS} are allowed")
    out: list[Message] = []
    turn: list[Part] | None = None   # the assistant turn being gathered, if any

    def flush() -> None:
        nonlocal turn
        if turn is not None:
            out.append(Message("assistant", tuple(turn) or (TextPart(""),)))
            turn = None

    for i, item in enumerate(v):
        w = f"{where}[{i}]"
        if not isinstance(item, dict):
            _bad(w, "must be an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"  # EasyInputMessage: the SDK lets type be left out
        if kind == "message" and item.get("role") == "assistant":
            turn = (turn or []) + _assistant_parts(item.get("content"), f"{w}.content")
        elif kind == "function_call":
            args = item.get("arguments")
            if not isinstance(args, str):
                _bad(f"{w}.arguments", "is required and must be a string of JSON")
            name, ns = _req_str(item, "name", w), item.get("namespace")
            if isinstance(ns, str):
                # A stored conversation (previous_response_id) is replayed without the
                # tools that declared it: fall back to the uncollided flat name.
                name = (flat or {}).get((ns, name), f"{ns}__{name}")
            call = ToolCallPart(_req_str(item, "call_id", w), name, args)
            turn = (turn or []) + [call]
        elif kind == "reasoning":
            thinking = _reasoning_item(item, w)
            turn = (turn or []) + ([thinking] if thinking else [])
        elif kind == "message":
            flush()
            out.append(_message(item, w))
        elif kind == "function_call_output":
            flush()
            out.append(Message("tool", (ToolResultPart(
                _req_str(item, "call_id", w), _tool_output(item.get("output"), f"{w}.output")),)))
        elif kind == "item_reference":
            _bad(f"{w}.type", "'item_reference' is not supported: send the item itself, or "
                              "continue a stored response with previous_response_id")
        elif isinstance(kind, str) and kind.endswith(("_call", "_call_output")):
            _bad(f"{w}.type", f"'{kind}' items belong to built-in tools, which this gateway "
                              f"does not support")
        else:
            _bad(f"{w}.type", "must be one of message, function_call, function_call_output, "
                              "reasoning")
    flush()
    return tuple(out)


def _message(m: dict, where: str) -> Message:
    role, content = m.get("role"), m.get("content")
    if role in ("system", "developer"):
        return Message("system", _parts(content, f"{where}.content", ("input_text",)))
    if role == "user":
        return Message("user", _parts(content, f"{where}.content", ("input_text", "input_image")))
    _bad(f"{where}.role", "must be one of user, system, developer, assistant")


def _assistant_parts(content: object, where: str) -> list[Part]:
    # Empty text says "no text", typically beside function calls.
    kinds = ("output_text", "refusal", "input_text")
    return [p for p in _parts(content, where, kinds) if not isinstance(p, TextPart) or p.text]


def _parts(content: object, where: str, kinds: tuple[str, ...]) -> tuple[Part, ...]:
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
        if kind in ("input_file", "input_audio"):
            _bad(f"{pw}.type", f"'{kind}' content is not supported by this gateway")
        if kind not in kinds:
            _bad(f"{pw}.type", "must be one of " + ", ".join(kinds))
        if kind == "input_image":
            out.append(_image(p, pw))
        else:
            key = "refusal" if kind == "refusal" else "text"
            out.append(TextPart(_req_str(p, key, pw, empty_ok=True)))
    return tuple(out)


def _image(p: dict, where: str) -> ImagePart:
    if p.get("file_id") is not None:
        _bad(f"{where}.file_id", "is not supported: this gateway has no Files API; send "
                                 "image_url as an https or data: URL")
    url = _req_str(p, "image_url", where)
    detail = p.get("detail")
    if detail is not None and not (isinstance(detail, str) and detail in _DETAILS):
        _bad(f"{where}.detail", "must be one of auto, low, high, original")
    detail = _DETAILS.get(detail) if detail is not None else None
    m = DATA_URL.fullmatch(url)
    if m:
        return ImagePart(data_b64=m[2], media_type=m[1], detail=detail)
    return ImagePart(url=url, detail=detail)


def _tool_output(v: object, where: str) -> tuple[TextPart | ImagePart, ...]:
    if isinstance(v, str):
        return (TextPart(v),)
    if not isinstance(v, list):
        _bad(where, "is required and must be a string or an array of input_text / "
                    "input_image parts")
    return _parts(v, where, ("input_text", "input_image"))  # type: ignore[return-value]


def _reasoning_item(item: dict, where: str) -> ThinkingPart | None:
    texts = {}
    for key, part_type in (("content", "reasoning_text"), ("summary", "summary_text")):
        v = item.get(key)
        if v is None:
            texts[key] = []
            continue
        if not isinstance(v, list):
            _bad(f"{where}.{key}", f"must be an array of {part_type} parts")
        for j, p in enumerate(v):
            if not isinstance(p, dict) or p.get("type") != part_type:
                _bad(f"{where}.{key}[{j}]", f"must be a {part_type} part")
            _req_str(p, "text", f"{where}.{key}[{j}]", empty_ok=True)
        texts[key] = [p["text"] for p in v]
    signature = _opt_str(item, "encrypted_content", where)
    text = "".join(texts["content"]) or "\n\n".join(texts["summary"])
    if not text and signature is None:
        return None
    return ThinkingPart(text, signature)


def _tools(v: object) -> tuple[tuple[Tool, ...], list[dict]]:
    out: list[Tool] = []
    hosted: list[dict] = []
    flat = {pair: f for f, pair in namespaced(v).items()}
    for where, t in tool_items(v, MAX_TOOLS):
        kind = t.get("type")
        if kind == "namespace":
            # A name grouping ordinary function tools: they go up flattened.
            _req_str(t, "name", where)
            inner = t.get("tools")
            if not isinstance(inner, list):
                _bad(f"{where}.tools", "is required and must be an array of function tools")
            for j, f in enumerate(inner):
                fw = f"{where}.tools[{j}]"
                if not isinstance(f, dict) or f.get("type", "function") != "function":
                    _bad(fw, "must be a function tool")
                tool = _function(f, fw)
                out.append(replace(tool, name=flat.get((t["name"], tool.name), tool.name)))
            continue
        if isinstance(kind, str) and kind in HOSTED_TOOLS:
            # Run by the vendor, not the client: kept for a route that can run it,
            # else handled by the model's hosted_tools policy (codecs/hosted.py).
            hosted.append(hosted_tool("openai", kind, t))
            continue
        if kind != "function":
            shown = f"'{kind}'" if isinstance(kind, str) else "missing"
            builtin = (" is a built-in OpenAI tool and"
                       if isinstance(kind, str) and kind in BUILTIN_TOOLS else "")
            _bad(f"{where}.type", f"{shown}{builtin} is not supported by this gateway: only "
                                  f"function tools are (web_search, file_search, "
                                  f"code_interpreter and other built-in tools are not)")
        out.append(_function(t, where))
    return tuple(out), hosted


def _function(t: dict, where: str) -> Tool:
    name = _req_str(t, "name", where)
    description = _opt_str(t, "description", where)
    _opt_bool(t, "strict", where)
    params = t.get("parameters")
    if params is not None and not isinstance(params, dict):
        _bad(f"{where}.parameters", "must be a JSON schema object")
    return Tool(name, description) if params is None else Tool(name, description, params)


def _tool_choice(v: object, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if v is None:
        return None
    if isinstance(v, str) and v in ("auto", "none", "required"):
        return ToolChoice(v)  # type: ignore[arg-type]
    if isinstance(v, dict) and v.get("type") == "function":
        name = _req_str(v, "name", "tool_choice")
        if all(t.name != name for t in tools):
            _bad("tool_choice.name", f"names '{name}', which is not among tools")
        return ToolChoice("tool", name)
    _bad("tool_choice", "must be 'auto', 'none', 'required' or "
                        "{\"type\": \"function\", \"name\": ...}")


def _text_format(v: object) -> ResponseFormat | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        _bad("text", "must be an object")
    verbosity = v.get("verbosity")
    if verbosity is not None and verbosity not in ("low", "medium", "high"):
        _bad("text.verbosity", "must be one of low, medium, high")
    fmt = v.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        _bad("text.format", "must be an object")
    kind = fmt.get("type")
    if kind == "text" or kind == "json_object":
        return ResponseFormat(kind)
    if kind != "json_schema":
        _bad("text.format.type", "must be one of text, json_object, json_schema")
    code = "invalid_response_format_schema"
    name = fmt.get("name")
    if not isinstance(name, str) or not name:
        _bad("text.format.name", "is required and must be a non-empty string", code)
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        _bad("text.format.schema", "is required and must be a JSON schema object", code)
    _opt_str(fmt, "description", "text.format")
    return ResponseFormat("json_schema", schema, name, _opt_bool(fmt, "strict", "text.format"))


# ---------------------------------------------------------------- chaining

def input_items(body: dict) -> list[dict]:
    """This request's input as a list of items (a bare string becomes a user message),
    for storing with the response. Call only on a body that decoded."""
    v = body.get("input")
    if v is None:
        return []
    if isinstance(v, str):
        return [{"type": "message", "role": "user", "content": v}]
    return list(v)


def output_as_input(response: dict) -> list[dict]:
    """A Response object's output items, reshaped into the input items that replay it."""
    out: list[dict] = []
    for item in response.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            out.append({"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": c.get("text", "")}
                for c in item.get("content") or () if c.get("type") == "output_text"]})
        elif kind == "function_call":
            out.append({"type": "function_call", "call_id": item["call_id"],
                        "name": item["name"], "arguments": item["arguments"]})
        elif kind == "reasoning":
            replay = {"type": "reasoning", "summary": item.get("summary") or []}
            if item.get("encrypted_content") is not None:
                replay["encrypted_content"] = item["encrypted_content"]
            out.append(replay)
    return out


def history_messages(items: list) -> tuple[Message, ...]:
    """The canonical conversation a stored chain of input items describes."""
    return _items(items, "previous_response")
