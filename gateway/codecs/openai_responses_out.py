"""The Responses API object a client receives, built from canonical values.

Split from openai_responses (which decodes requests) to keep modules small. Owns the
Response object's shape: the echo of request settings, output items (message,
function_call, reasoning), usage, and the status a finish reason maps to (the rules
are in openai_responses' docstring). The stream encoder builds its items with the
same helpers, so a streamed response and a plain one have the same shape and ids.
"""
from __future__ import annotations

from typing import Any

from gateway.canonical import (
    FinishReason, Response, TextPart, ThinkingPart, ToolCallPart, Usage,
)

_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_SUMMARIES = ("auto", "concise", "detailed")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def request_echo(body: dict) -> dict[str, Any]:
    """The request settings a Response object repeats, normalised from a body that
    decoded (so every value has the shape the Response schema wants)."""
    r = body.get("reasoning") or {}
    text = body.get("text") or {}
    fmt = text.get("format") or {"type": "text"}
    echo_text: dict[str, Any] = {"format": {k: fmt[k] for k in (
        "type", "name", "schema", "description", "strict") if k in fmt}}
    if text.get("verbosity") is not None:
        echo_text["verbosity"] = text["verbosity"]
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": r.get("effort") if r.get("effort") in _EFFORTS else None,
                      "summary": r.get("summary") if r.get("summary") in _SUMMARIES else None},
        "store": body.get("store") is not False,
        "temperature": body.get("temperature"),
        "text": echo_text,
        "tool_choice": body.get("tool_choice") or "auto",
        # Function tools only: the Response schema has no home for a namespace, and a
        # hosted tool this gateway did not run is not one the response used.
        "tools": [{"type": "function", "name": t["name"], "description": t.get("description"),
                   "parameters": t.get("parameters"), "strict": t.get("strict")}
                  for t in body.get("tools") or () if t.get("type") == "function"],
        # Not part of the Response object: how to name calls of namespaced tools.
        "namespaces": namespaced(body.get("tools")),
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "user": body.get("user"),
    }


def namespaced(tools: object) -> dict[str, tuple[str, str]]:
    """Flat upstream name -> (namespace, name) for the function tools grouped under
    ``{"type": "namespace"}`` tools. Upstreams know only flat function tools, so each
    grouped tool goes up as ``<namespace>__<name>`` (suffixed ``_2``, ``_3``... where
    that collides), and calls come back under the names the client declared. Computed
    from the request's tools alone, so the decoder and the encoders agree."""
    if not isinstance(tools, (list, tuple)):
        return {}
    taken = {t["name"] for t in tools if isinstance(t, dict) and t.get("type") == "function"
             and isinstance(t.get("name"), str)}
    out: dict[str, tuple[str, str]] = {}
    for t in tools:
        if not (isinstance(t, dict) and t.get("type") == "namespace"
                and isinstance(t.get("name"), str) and isinstance(t.get("tools"), list)):
            continue
        for inner in t["tools"]:
            if not isinstance(inner, dict) or not isinstance(inner.get("name"), str):
                continue
            base = flat = f"{t['name']}__{inner['name']}"
            n = 1
            while flat in taken:
                n += 1
                flat = f"{base}_{n}"
            taken.add(flat)
            out[flat] = (t["name"], inner["name"])
    return out


def item_id(prefix: str, response_id: str, index: int) -> str:
    """Output item ids derive from the response id, so a stream and its final object agree."""
    return f"{prefix}_{response_id.removeprefix('resp_')}_{index}"


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(id: str, text: str, status: str) -> dict:
    return {"id": id, "type": "message", "status": status, "role": "assistant",
            "content": [text_part(text)] if status != "in_progress" else []}


def call_item(id: str, call_id: str, name: str, arguments: str, status: str,
              names: dict[str, tuple[str, str]] | None = None) -> dict:
    """``names`` is ``namespaced(tools)``: a flattened name goes back to the client as
    the name and namespace it declared."""
    item = {"id": id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}
    if names and name in names:
        item["namespace"], item["name"] = tuple(names[name])
    return item


def reasoning_item(id: str, text: str, signature: str | None, status: str) -> dict:
    item: dict[str, Any] = {"id": id, "type": "reasoning", "status": status,
                            "summary": [{"type": "summary_text", "text": text}]
                            if text and status != "in_progress" else []}
    if signature is not None:
        item["encrypted_content"] = signature
    return item


def usage_out(u: Usage) -> dict:
    return {"input_tokens": u.input_tokens,
            "input_tokens_details": {"cached_tokens": u.cached_input_tokens,
                                     "cache_write_tokens": 0},
            "output_tokens": u.output_tokens,
            "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
            "total_tokens": u.total_tokens}


def status_of(finish: FinishReason | None) -> str:
    if finish in _INCOMPLETE:
        return "incomplete"
    return "failed" if finish == "error" else "completed"


def response_object(*, response_id: str, model: str, created_at: int, echo: dict,
                    status: str, output: list[dict], usage: Usage | None,
                    finish: FinishReason | None = None,
                    error: dict | None = None) -> dict:
    """The Response object in OpenAI's field order."""
    if status == "failed" and error is None:
        error = {"code": "server_error",
                 "message": "The upstream model stopped with an error before finishing"}
    reason = _INCOMPLETE.get(finish) if status == "incomplete" else None  # type: ignore[arg-type]
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "background": False, "error": error,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": echo["instructions"], "max_output_tokens": echo["max_output_tokens"],
        "model": model, "output": output,
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": echo["previous_response_id"], "reasoning": echo["reasoning"],
        "store": echo["store"], "temperature": echo["temperature"], "text": echo["text"],
        "tool_choice": echo["tool_choice"], "tools": echo["tools"], "top_p": echo["top_p"],
        "truncation": echo["truncation"],
        "usage": usage_out(usage) if usage is not None else None,
        "user": echo["user"], "metadata": echo["metadata"],
    }


def from_canonical_response(resp: Response, *, model: str, response_id: str, created_at: int,
                            request_echo: dict) -> dict:
    """Encode the client's Response object; ``model`` is the public id."""
    status = status_of(resp.finish_reason)
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict] = []
    texts: list[str] = []
    names = request_echo.get("namespaces") or {}

    def flush_text() -> None:
        if texts:
            output.append(message_item(item_id("msg", response_id, len(output)),
                                       "".join(texts), item_status))
            texts.clear()

    for p in resp.message.parts:
        if isinstance(p, TextPart):
            texts.append(p.text)
            continue
        flush_text()
        if isinstance(p, ThinkingPart):
            output.append(reasoning_item(item_id("rs", response_id, len(output)), p.text,
                                         p.signature, "completed"))
        elif isinstance(p, ToolCallPart):
            output.append(call_item(item_id("fc", response_id, len(output)), p.id, p.name,
                                    p.arguments, "completed", names))
    flush_text()
    if not any(item["type"] != "reasoning" for item in output):
        # An answer with neither text nor calls is still one (empty) message.
        output.append(message_item(item_id("msg", response_id, len(output)), "", item_status))
    return response_object(response_id=response_id, model=model, created_at=created_at,
                           echo=request_echo, status=status, output=output, usage=resp.usage,
                           finish=resp.finish_reason)
