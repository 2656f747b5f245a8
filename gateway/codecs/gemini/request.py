"""Gemini generateContent requests from clients -> canonical (dialect rules: the package
docstring)."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, NoReturn

from gateway.canonical import (
    ImagePart, Message, Part, Request, ResponseFormat, TextPart, ThinkingPart, Tool,
    ToolCallPart, ToolChoice, ToolResultPart,
)
from gateway.codecs.fields import at as _at, is_int as _is_int, is_num as _is_num
from gateway.codecs.gemini.parts import dumps, image_type, is_base64, render_code
from gateway.codecs.schema import normalize_tool_schema, validate_response_schema
from gateway.errors import (
    InvalidRequest, InvalidResponseFormatSchema, UnsupportedGeminiFeature,
    UnsupportedResponseFormat,
)

MAX_CONTENTS = 10_000
MAX_TOOLS = 128
MAX_STOP = 5

IGNORED_FIELDS = frozenset({
    "labels", "serviceTier", "store", "model", "responseLogprobs", "logprobs",
    "mediaResolution", "speechConfig", "imageConfig", "enableEnhancedCivicAnswers",
    "audioTimestamp", "routingConfig", "modelSelectionConfig", "retrievalConfig",
})
FUNCTION_DECLARATIONS = "functionDeclarations"
_DATA_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
               "executableCode", "codeExecutionResult")
_UNTRANSLATED_KINDS = ("toolCall", "toolResponse")
_MODES = {"AUTO": "auto", "MODE_UNSPECIFIED": "auto", "VALIDATED": "auto",
          "ANY": "required", "NONE": "none"}


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), name)


def _camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), name)


def _bad(field: str, problem: str, cls: type[InvalidRequest] = InvalidRequest) -> NoReturn:
    raise cls(f"{field} {problem}", field=field)


def _get(d: dict, key: str, where: str = "") -> Any:
    """A field under its lowerCamelCase or its snake_case name."""
    v = d.get(key)
    alt = _snake(key)
    if alt != key and d.get(alt) is not None:
        if v is not None:
            _bad(_at(where, key), f"is given twice (as {key} and {alt})")
        v = d[alt]
    return v


class _CallIds:
    """Pairs functionResponse parts with the functionCall they answer (module docstring)."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.n = 0
        self.pending: dict[str, list[str]] = {}

    def fresh(self) -> str:
        while f"call_{self.n}" in self.taken:
            self.n += 1
        self.n += 1
        return f"call_{self.n - 1}"

    def call(self, name: str, given: str | None) -> str:
        call_id = given or self.fresh()
        self.pending.setdefault(name, []).append(call_id)
        return call_id

    def answer(self, name: str, given: str | None) -> str:
        queue = self.pending.get(name, [])
        if given:
            if given in queue:
                queue.remove(given)
            return given
        return queue.pop(0) if queue else self.fresh()


def _explicit_ids(contents: list) -> set[str]:
    ids: set[str] = set()
    for c in contents:
        parts = c.get("parts") if isinstance(c, dict) else None
        for p in parts if isinstance(parts, list) else ():
            if not isinstance(p, dict):
                continue
            for key in ("functionCall", "function_call", "functionResponse", "function_response"):
                v = p.get(key)
                if isinstance(v, dict) and isinstance(v.get("id"), str):
                    ids.add(v["id"])
    return ids


def to_canonical_request(body: object, *, model: str, stream: bool) -> Request:
    """Decode a client's (already JSON-parsed) generateContent request body."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if body.get("stream") is True and not stream:
        _bad("stream", "is not valid on generateContent; call streamGenerateContent for "
                       "streaming")
    if _get(body, "cachedContent") is not None:
        _bad("cachedContent", "is not supported: a context cache lives in the caller's own "
                              "Google project, which the gateway cannot read",
             UnsupportedGeminiFeature)
    native: dict[str, Any] = {}
    contents = _get(body, "contents")
    if not isinstance(contents, list) or not contents:
        _bad("contents", "is required and must be a non-empty array of Content objects")
    if len(contents) > MAX_CONTENTS:
        _bad("contents", f"holds {len(contents)} turns; at most {MAX_CONTENTS} are allowed")
    ids = _CallIds(_explicit_ids(contents))
    turns = [_content(c, f"contents[{i}]", ids) for i, c in enumerate(contents)]
    if not any(m.parts for m in turns):
        # Only empty model text (Gemini's signature carriers) came: nothing to send on.
        _bad("contents", "holds no content: every part is empty text in a model turn")
    messages = [_system(_get(body, "systemInstruction")), *turns]
    tools = _tools(_get(body, "tools"), native)
    tool_choice, tools = _tool_config(_get(body, "toolConfig"), tools)
    gen = _get(body, "generationConfig")
    if gen is None:
        gen = {}
    if not isinstance(gen, dict):
        _bad("generationConfig", "must be an object")
    metadata: dict[str, Any] = {}
    if native:
        metadata["gemini_native"] = native
    safety = _get(body, "safetySettings")
    if safety is not None:
        if not isinstance(safety, list) or not all(isinstance(s, dict) for s in safety):
            _bad("safetySettings", "must be an array of SafetySetting objects")
        metadata["gemini_safety"] = safety
    return _with_generation(gen, Request(
        model=model, messages=tuple(m for m in messages if m is not None), tools=tools,
        tool_choice=tool_choice, stream=stream, include_usage=stream, metadata=metadata))


def _system(v: object) -> Message | None:
    if v is None:
        return None
    if isinstance(v, str):  # not proto JSON, but some hand-written clients send it
        return Message("system", (TextPart(v),))
    if not isinstance(v, dict):
        _bad("systemInstruction", "must be a Content object with text parts")
    parts = _get(v, "parts", "systemInstruction")
    if not isinstance(parts, list):
        _bad("systemInstruction.parts", "must be an array of text parts")
    texts = []
    for j, p in enumerate(parts):
        text = p.get("text") if isinstance(p, dict) else None
        if not isinstance(text, str):
            _bad(f"systemInstruction.parts[{j}]", "must be a text part")
        texts.append(TextPart(text))
    return Message("system", tuple(texts)) if texts else None


def _content(c: object, where: str, ids: _CallIds) -> Message:
    if not isinstance(c, dict):
        _bad(where, "must be an object with role and parts")
    role = c.get("role")
    if role in (None, ""):
        role = "user"  # Gemini's own default for a single turn
    if role not in ("user", "model", "function"):
        _bad(f"{where}.role", "must be 'user' or 'model'")
    parts = c.get("parts")
    if not isinstance(parts, list) or not parts:
        _bad(f"{where}.parts", "is required and must be a non-empty array of Part objects")
    out: list[Part] = []
    for j, p in enumerate(parts):
        out.extend(_part(p, f"{where}.parts[{j}]", role == "model", ids))
    return Message("assistant" if role == "model" else "user", tuple(out))


def _data_kind(p: dict, where: str) -> str | None:
    found = [k for k in _DATA_KINDS if _get(p, k, where) is not None]
    if len(found) > 1:
        _bad(where, f"carries both {found[0]} and {found[1]}; a part holds exactly one")
    if found:
        return found[0]
    for k in _UNTRANSLATED_KINDS:
        if _get(p, k, where) is not None:
            _bad(f"{_at(where, k)}", "parts are not supported by this gateway",
                 UnsupportedGeminiFeature)
    return None


def _part(p: object, where: str, model_turn: bool, ids: _CallIds) -> list[Part]:
    if not isinstance(p, dict):
        _bad(where, "must be an object")
    kind = _data_kind(p, where)
    sig = _get(p, "thoughtSignature", where) if model_turn else None
    if sig is not None and not (isinstance(sig, str) and is_base64(sig)):
        _bad(f"{where}.thoughtSignature", "must be base64 text")  # Gemini types it bytes
    lead: list[Part] = [ThinkingPart("", sig)] if sig else []
    if kind is None:
        if sig:
            return lead
        _bad(where, f"must carry one of {', '.join(_DATA_KINDS)}")
    value = _get(p, kind, where)
    kw = f"{where}.{kind}"
    if kind == "text":
        if not isinstance(value, str):
            _bad(kw, "must be a string")
        if model_turn and p.get("thought") is True:
            return [ThinkingPart(value, sig)] if value or sig else []
        if model_turn and not value:
            return lead  # Gemini's empty closing part, often just a signature carrier
        return lead + [TextPart(value)]
    if not isinstance(value, dict):
        _bad(kw, "must be an object")
    if kind == "inlineData":
        return lead + [_inline(value, kw)]
    if kind == "fileData":
        return lead + [_file(value, kw)]
    if kind in ("executableCode", "codeExecutionResult"):
        return lead + [TextPart(render_code(kind, value))]
    name = value.get("name")
    if not isinstance(name, str) or not name:
        _bad(f"{kw}.name", "is required and must be a non-empty string")
    given = value.get("id")
    if given is not None and not isinstance(given, str):
        _bad(f"{kw}.id", "must be a string")
    if kind == "functionCall":
        if not model_turn:
            _bad(kw, "may appear only in model turns")
        args = value.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            _bad(f"{kw}.args", "must be an object")
        return lead + [ToolCallPart(ids.call(name, given), name, dumps(args))]
    if model_turn:
        _bad(kw, "may appear only in user turns")
    response = value.get("response")
    if response is None:
        response = {}
    if not isinstance(response, dict):
        _bad(f"{kw}.response", "must be an object")
    # Gemini's convention: "output" holds a result, "error" alone reports a failure.
    failed = "error" in response and "output" not in response
    return [ToolResultPart(ids.answer(name, given), (TextPart(dumps(response)),), failed)]


def _inline(v: dict, where: str) -> ImagePart:
    mime, data = _get(v, "mimeType", where), v.get("data")
    if not isinstance(mime, str) or not mime:
        _bad(f"{where}.mimeType", "is required and must be a string")
    if not isinstance(data, str) or not is_base64(data):
        _bad(f"{where}.data", "is required and must be base64 text")
    if image_type(mime) is None:
        _bad(f"{where}.mimeType", f"{mime!r} is not supported: the gateway translates "
                                  f"image input only", UnsupportedGeminiFeature)
    return ImagePart(data_b64=data, media_type=mime)


def _file(v: dict, where: str) -> ImagePart:
    uri, mime = _get(v, "fileUri", where), _get(v, "mimeType", where)
    if not isinstance(uri, str) or not uri:
        _bad(f"{where}.fileUri", "is required and must be a string")
    if mime is not None and not isinstance(mime, str):
        _bad(f"{where}.mimeType", "must be a string")
    media = image_type(mime, uri)
    if media is None:
        _bad(f"{where}.mimeType", f"{mime!r} is not supported: the gateway translates "
                                  f"image files only", UnsupportedGeminiFeature)
    return ImagePart(url=uri, media_type=media)


def _tools(v: object, native: dict[str, Any]) -> tuple[Tool, ...]:
    if v is None:
        return ()
    if not isinstance(v, list):
        _bad("tools", "must be an array of Tool objects")
    out: list[Tool] = []
    for i, t in enumerate(v):
        if not isinstance(t, dict):
            _bad(f"tools[{i}]", "must be an object")
        for key, value in t.items():
            name = _camel(key)
            if value is None:
                continue
            if name != FUNCTION_DECLARATIONS:
                # Built-in tools run inside Gemini; only a Gemini route can serve them.
                native[name] = value
                continue
            if not isinstance(value, list):
                _bad(f"tools[{i}].{key}", "must be an array of FunctionDeclaration objects")
            out.extend(_declaration(d, f"tools[{i}].{key}[{j}]") for j, d in enumerate(value))
    if len(out) > MAX_TOOLS:
        _bad("tools", f"declare {len(out)} functions; at most {MAX_TOOLS} are allowed")
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        _bad("tools", "declare a function name twice")
    return tuple(out)


def _declaration(d: object, where: str) -> Tool:
    if not isinstance(d, dict):
        _bad(where, "must be an object")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        _bad(f"{where}.name", "is required and must be a non-empty string")
    description = d.get("description")
    if description is not None and not isinstance(description, str):
        _bad(f"{where}.description", "must be a string")
    params = _get(d, "parameters", where)
    js = _get(d, "parametersJsonSchema", where)
    if params is not None and js is not None:
        _bad(where, "gives both parameters and parametersJsonSchema; send one")
    key = "parameters" if params is not None else "parametersJsonSchema"
    schema = params if params is not None else js
    if schema is None:
        return Tool(name, description)
    return Tool(name, description, normalize_tool_schema(schema, field=f"{where}.{key}"))


def _tool_config(v: object, tools: tuple[Tool, ...]) -> tuple[ToolChoice | None, tuple[Tool, ...]]:
    if v is None:
        return None, tools
    if not isinstance(v, dict):
        _bad("toolConfig", "must be an object")
    fcc = _get(v, "functionCallingConfig", "toolConfig")
    if fcc is None or not tools:
        return None, tools
    where = "toolConfig.functionCallingConfig"
    if not isinstance(fcc, dict):
        _bad(where, "must be an object")
    mode = fcc.get("mode")
    if mode is None:
        mode = "AUTO"
    if not isinstance(mode, str) or mode.upper() not in _MODES:
        _bad(f"{where}.mode", "must be one of AUTO, ANY, NONE, VALIDATED")
    names = _get(fcc, "allowedFunctionNames", where)
    if names is None:
        return ToolChoice(_MODES[mode.upper()]), tools  # type: ignore[arg-type]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        _bad(f"{where}.allowedFunctionNames", "must be a non-empty array of function names")
    if mode.upper() != "ANY":
        _bad(f"{where}.allowedFunctionNames", "is only valid with mode ANY")
    declared = {t.name for t in tools}
    for n in names:
        if n not in declared:
            _bad(f"{where}.allowedFunctionNames", f"names '{n}', which is not among the "
                                                  f"function declarations")
    if len(set(names)) == 1:
        return ToolChoice("tool", names[0]), tools
    # Under ANY the model must call one of these, so hiding the rest changes nothing.
    return ToolChoice("required"), tuple(t for t in tools if t.name in names)


def _opt_number(gen: dict, key: str, lo: float, hi: float) -> float | None:
    v = _get(gen, key, "generationConfig")
    if v is None:
        return None
    if not _is_num(v) or not lo <= v <= hi:
        _bad(f"generationConfig.{key}", f"must be a number from {lo:g} to {hi:g}")
    return float(v)


def _opt_int(gen: dict, key: str, lo: int) -> int | None:
    v = _get(gen, key, "generationConfig")
    if v is None:
        return None
    # The Python SDK declares topK a float, so 40.0 arrives for 40.
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        v = int(v)
    if not _is_int(v) or v < lo:
        _bad(f"generationConfig.{key}", f"must be an integer of at least {lo}")
    return v


def _with_generation(gen: dict, req: Request) -> Request:
    count = _opt_int(gen, "candidateCount", 1)
    if count is not None and count != 1:
        _bad("generationConfig.candidateCount", "must be 1: only one candidate is supported")
    stop = _get(gen, "stopSequences", "generationConfig")
    if stop is None:
        stop = []
    if not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) for s in stop):
        _bad("generationConfig.stopSequences", f"must be an array of up to {MAX_STOP} strings")
    seed = _get(gen, "seed", "generationConfig")
    if seed is not None and not _is_int(seed):
        _bad("generationConfig.seed", "must be an integer")
    modalities = _get(gen, "responseModalities", "generationConfig")
    if modalities is not None:
        if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
            _bad("generationConfig.responseModalities", "must be an array of modality names")
        for m in modalities:
            if m.upper() not in ("TEXT", "MODALITY_UNSPECIFIED"):
                _bad("generationConfig.responseModalities", f"asks for {m}; the gateway "
                     f"returns text only", UnsupportedGeminiFeature)
    metadata = dict(req.metadata)
    extra = {o: v for g, o in (("presencePenalty", "presence_penalty"),
                               ("frequencyPenalty", "frequency_penalty"))
             if (v := _opt_number(gen, g, -2, 2)) is not None}
    if extra:
        metadata["openai_extra"] = extra
    thinking = _get(gen, "thinkingConfig", "generationConfig")
    if thinking is not None:
        if not isinstance(thinking, dict):
            _bad("generationConfig.thinkingConfig", "must be an object")
        metadata["gemini_thinking"] = thinking
    return replace(
        req, max_tokens=_opt_int(gen, "maxOutputTokens", 1),
        temperature=_opt_number(gen, "temperature", 0, 2),
        top_p=_opt_number(gen, "topP", 0, 1), top_k=_opt_int(gen, "topK", 1),
        stop=tuple(stop), seed=seed, response_format=_response_format(gen), metadata=metadata)


def _response_format(gen: dict) -> ResponseFormat | None:
    where = "generationConfig"
    mime = _get(gen, "responseMimeType", where)
    if mime is not None and not isinstance(mime, str):
        _bad(f"{where}.responseMimeType", "must be a string")
    kind = mime.split(";", 1)[0].strip().lower() if mime else ""
    if kind not in ("", "text/plain", "application/json"):
        _bad(f"{where}.responseMimeType", f"{mime!r} is not supported; use application/json "
             f"(with an enum schema for enums) or text/plain", UnsupportedResponseFormat)
    given = [(k, v) for k in ("responseSchema", "responseJsonSchema", "_responseJsonSchema")
             if (v := _get(gen, k, where)) is not None]
    if len(given) > 1:
        _bad(where, f"gives both {given[0][0]} and {given[1][0]}; send one",
             InvalidResponseFormatSchema)
    if given:
        if kind == "text/plain":
            _bad(f"{where}.responseMimeType", "must be application/json when a response "
                 "schema is given", UnsupportedResponseFormat)
        key, raw = given[0]
        return ResponseFormat("json_schema", validate_response_schema(raw, field=f"{where}.{key}"))
    return ResponseFormat("json_object") if kind == "application/json" else None
