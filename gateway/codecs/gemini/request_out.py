"""Canonical requests -> generateContent bodies for Gemini upstreams, and the check of
which upstream kinds can serve a Gemini request at all."""
from __future__ import annotations

import json
from typing import Any, Callable, Sequence, TypeVar

from gateway.canonical import ImagePart, Message, Part, Request, TextPart, Tool, ToolResultPart
from gateway.codecs.gemini.parts import image_out, model_parts_out, with_id
from gateway.errors import UnsupportedGeminiFeature, UnsupportedResponseFormat
from gateway.codecs.fields import is_num as _is_num
from gateway.codecs.gemini.request import FUNCTION_DECLARATIONS, MAX_STOP

R = TypeVar("R")

def check_route(req: Request, provider_kind: str, *, native_tools: bool = True) -> None:
    """Refuse, before any upstream call, what only a native Gemini route can serve.
    The simulator stands in for every upstream kind, Gemini included, so it passes.
    ``native_tools=False`` leaves built-in tools to the model's hosted_tools policy
    (routing/hosted.py), which may drop them instead."""
    if provider_kind in ("gemini", "simulator"):
        return
    native = req.metadata.get("gemini_native")
    if native and native_tools:
        names = ", ".join(sorted(native))
        raise UnsupportedGeminiFeature(
            f"tools {names} need a native Gemini route, and the model {req.model!r} is "
            f"served by a {provider_kind} provider", field="tools")
    rf = req.response_format
    if rf is not None and rf.schema is not None and not _object_root(rf.schema):
        raise UnsupportedResponseFormat(
            f"the model {req.model!r} is served by a {provider_kind} provider, which takes "
            f"only an object at the root of a response schema", field="generationConfig")


def usable_routes(req: Request, routes: Sequence[R], kind_of: Callable[[R], str | None], *,
                  native_tools: bool = True) -> tuple[R, ...]:
    """The routes, in order, whose provider kind can serve ``req`` (``kind_of`` None:
    unknown, kept for the dispatcher to judge); when none can, check_route's refusal for
    the first. Failover must not land a native feature on an upstream that drops it."""
    usable, refusal = [], None
    for route in routes:
        kind = kind_of(route)
        try:
            if kind is not None:
                check_route(req, kind, native_tools=native_tools)
        except (UnsupportedGeminiFeature, UnsupportedResponseFormat) as exc:
            refusal = refusal or exc
            continue
        usable.append(route)
    if not usable and refusal is not None:
        raise refusal
    return tuple(usable)


def _object_root(schema: dict) -> bool:
    t = schema.get("type")
    return t == "object" or (t is None and "properties" in schema)


def from_canonical_request(req: Request, upstream_model: str) -> dict:
    """Encode for a Gemini upstream. ``upstream_model`` belongs in the URL, which the
    provider builds; it is accepted here so every codec has the same signature."""
    del upstream_model
    body: dict[str, Any] = {"contents": _contents_out(req.messages)}
    # Gemini has no system role in contents: every system message, wherever it was
    # given, joins systemInstruction in order (the conversation itself keeps its order).
    system = [{"text": p.text} for m in req.messages if m.role == "system"
              for p in m.parts if isinstance(p, TextPart)]
    if system:
        body["systemInstruction"] = {"parts": system}
    tools: list[dict] = []
    if req.tools:
        tools.append({FUNCTION_DECLARATIONS: [_declaration_out(t) for t in req.tools]})
    native = req.metadata.get("gemini_native")
    if isinstance(native, dict):
        tools.extend({k: v} for k, v in native.items() if v is not None)
    if tools:
        body["tools"] = tools
    tc = req.tool_choice
    if tc is not None and req.tools:
        fcc: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE"}.get(tc.mode, "ANY")}
        if tc.mode == "tool":
            fcc["allowedFunctionNames"] = [tc.name]
        body["toolConfig"] = {"functionCallingConfig": fcc}
    gen = _generation_out(req)
    if gen:
        body["generationConfig"] = gen
    safety = req.metadata.get("gemini_safety")
    if isinstance(safety, list):
        body["safetySettings"] = safety
    return body


def _declaration_out(t: Tool) -> dict:
    d: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        d["description"] = t.description
    d["parametersJsonSchema"] = t.parameters
    return d


def _generation_out(req: Request) -> dict:
    gen: dict[str, Any] = {}
    for key, value in (("maxOutputTokens", req.max_tokens), ("temperature", req.temperature),
                       ("topP", req.top_p), ("topK", req.top_k), ("seed", req.seed)):
        if value is not None:
            gen[key] = value
    if req.stop:
        gen["stopSequences"] = list(req.stop[:MAX_STOP])
    extra = req.metadata.get("openai_extra")
    if isinstance(extra, dict):
        for src, dst in (("presence_penalty", "presencePenalty"),
                         ("frequency_penalty", "frequencyPenalty")):
            if _is_num(extra.get(src)):
                gen[dst] = extra[src]
    rf = req.response_format
    if rf is not None and rf.kind != "text":
        gen["responseMimeType"] = "application/json"
        if rf.schema is not None:
            gen["responseJsonSchema"] = rf.schema
    thinking = req.metadata.get("gemini_thinking")
    if isinstance(thinking, dict):
        gen["thinkingConfig"] = thinking
    modalities = req.metadata.get("response_modalities")
    if isinstance(modalities, (list, tuple)) and all(isinstance(m, str) for m in modalities):
        gen["responseModalities"] = [m.upper() for m in modalities]
    return gen


def _contents_out(messages: tuple[Message, ...]) -> list[dict]:
    contents: list[dict] = []
    names: dict[str, str] = {}   # call id -> function name, for functionResponse.name
    for m in messages:
        if m.role == "system":
            continue
        role = "model" if m.role == "assistant" else "user"
        parts = model_parts_out(m.parts, names) if role == "model" else _user_parts_out(m.parts, names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            # Parallel tool results arrive as one OpenAI message each; Gemini wants
            # them in one turn, and it needs turns to alternate anyway.
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _user_parts_out(parts: tuple[Part, ...], names: dict[str, str]) -> list[dict]:
    out: list[dict] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"text": p.text})
        elif isinstance(p, ImagePart):
            out.append(image_out(p))
        elif isinstance(p, ToolResultPart):
            out.append({"functionResponse": with_id(
                {"name": names.get(p.tool_call_id, "unknown_function"),
                 "response": _response_out(p)}, p.tool_call_id)})
            out.extend(image_out(c) for c in p.content if isinstance(c, ImagePart))
    return out


def _response_out(p: ToolResultPart) -> dict:
    text = p.text
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {"error": text} if p.is_error else {"output": text}
