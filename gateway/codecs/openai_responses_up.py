"""Canonical requests -> Responses API bodies, and Responses answers -> canonical, for
OpenAI-kind upstreams configured with ``api = "responses"`` (the upstream direction;
openai_responses*.py are the client side).

Why an upstream would speak it: OpenAI runs its hosted tools (``web_search``,
``file_search``, ``code_interpreter``, ``image_generation``, ``computer_use_preview``)
only on /v1/responses, so a route of this kind receives a client's Responses hosted
tools unchanged (codecs/hosted.py) where a Chat Completions route must leave them out.

Order is kept: system messages stay where they stand as ``role: "system"`` input items
(Responses accepts them anywhere in ``input``). Nothing is stored upstream
(``store: false``): Prism keeps conversations itself. What the wire cannot carry is
dropped, not refused: thinking going up (a reasoning item needs the upstream's own
encrypted content), ``stop``, ``seed``, ``top_k``. The answer's hosted-tool items
(``web_search_call`` ...) have no canonical form: the text that cites them comes back,
they do not. Pure: no I/O; upstream faults raise UpstreamProtocolError / UpstreamError.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from gateway.canonical import (
    Finish, FinishReason, ImagePart, Message, Part, Request, Response, StreamEvent,
    StreamStart, TextDelta, TextPart, ThinkingDelta, ThinkingPart, ToolCallDelta,
    ToolCallPart, ToolCallStart, ToolResultPart, Usage, UsageEvent,
)
from gateway.codecs import hosted
from gateway.codecs.fields import sniff_image_type
from gateway.errors import UpstreamError, UpstreamProtocolError

PATH = "/responses"
_INCOMPLETE_IN: dict[str, FinishReason] = {"max_output_tokens": "length",
                                           "content_filter": "content_filter"}


def _proto(problem: str) -> NoReturn:
    raise UpstreamProtocolError(f"upstream Responses API {problem}")


def _named(v: object) -> bool:
    return isinstance(v, str) and v != ""


# ---------------------------------------------------------------- requests

def from_canonical_request(req: Request, upstream_model: str) -> dict:
    body: dict[str, Any] = {"model": upstream_model, "store": False,
                            "input": [item for m in req.messages for item in _items(m)]}
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    for key in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if getattr(req, key) is not None:
            body[key] = getattr(req, key)
    tools = [{"type": "function", "name": t.name, "parameters": t.parameters,
              **({} if t.description is None else {"description": t.description})}
             for t in req.tools]
    tools += hosted.specs(req, "openai")   # as the client sent them
    if tools:
        body["tools"] = tools
    tc = req.tool_choice
    if tc is not None and req.tools:
        body["tool_choice"] = {"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode
    rf = req.response_format
    if rf is not None and rf.kind != "text":
        fmt: dict[str, Any] = {"type": rf.kind}
        if rf.kind == "json_schema":
            fmt.update(name=rf.name or "response", schema=rf.schema)
            if rf.strict is not None:
                fmt["strict"] = rf.strict
        body["text"] = {"format": fmt}
    if req.stream:
        body["stream"] = True
    return body


def _items(m: Message) -> list[dict]:
    if m.role == "system":
        return [{"role": "system", "content": "".join(
            p.text for p in m.parts if isinstance(p, TextPart))}]
    out: list[dict] = [{"type": "function_call_output", "call_id": p.tool_call_id,
                        "output": "".join(c.text for c in p.content if isinstance(c, TextPart))}
                       for p in m.parts if isinstance(p, ToolResultPart)]
    if m.role == "assistant":
        texts = [p.text for p in m.parts if isinstance(p, TextPart)]
        if texts:
            out.append({"role": "assistant",
                        "content": [{"type": "output_text", "text": t} for t in texts]})
        out += [{"type": "function_call", "call_id": p.id, "name": p.name,
                 "arguments": p.arguments} for p in m.parts if isinstance(p, ToolCallPart)]
        return out
    rest = [p for p in m.parts if isinstance(p, (TextPart, ImagePart))]
    if rest or not out:
        out.append({"role": "user", "content": [_input_part(p) for p in rest]})
    return out


def _input_part(p: Part) -> dict:
    if isinstance(p, TextPart):
        return {"type": "input_text", "text": p.text}
    assert isinstance(p, ImagePart)
    url = p.url if p.url is not None else \
        f"data:{p.media_type or sniff_image_type(p.data_b64 or '')};base64,{p.data_b64}"
    return {"type": "input_image", "image_url": url, "detail": p.detail or "auto"}


# ---------------------------------------------------------------- whole responses

def _count(d: dict, key: str) -> int:
    v = d.get(key, 0)
    if v is None:
        return 0
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        _proto(f"usage.{key} must be a non-negative integer")
    return v


def usage_in(u: object) -> Usage:
    if not isinstance(u, dict):
        _proto("usage must be an object")
    inp, outp = u.get("input_tokens_details") or {}, u.get("output_tokens_details") or {}
    if not isinstance(inp, dict) or not isinstance(outp, dict):
        _proto("usage details must be objects")
    return Usage(input_tokens=_count(u, "input_tokens"), output_tokens=_count(u, "output_tokens"),
                 cached_input_tokens=_count(inp, "cached_tokens"),
                 reasoning_tokens=_count(outp, "reasoning_tokens"))


def _finish(data: dict, has_calls: bool) -> FinishReason:
    status = data.get("status")
    if status == "failed":
        err = data.get("error")
        message = err.get("message") if isinstance(err, dict) else None
        raise UpstreamError(f"upstream response failed: "
                            f"{message if isinstance(message, str) else 'no message'}")
    if status == "incomplete":
        details = data.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE_IN.get(reason, "length") if isinstance(reason, str) else "length"
    if status is not None and status != "completed":
        _proto(f"status {status!r} is not a finished one")
    return "tool_calls" if has_calls else "stop"


def _texts(content: object, kind: str) -> list[str]:
    if not isinstance(content, list):
        return []
    return [c["text"] for c in content if isinstance(c, dict) and c.get("type") == kind
            and isinstance(c.get("text"), str)]


def to_canonical_response(data: object) -> Response:
    if not isinstance(data, dict):
        _proto("response is not a JSON object")
    output = data.get("output")
    if not isinstance(output, list):
        _proto("response has no output list")
    parts: list[Part] = []
    for item in output:
        if not isinstance(item, dict):
            _proto("output item is not an object")
        kind = item.get("type")
        if kind == "message":
            parts += [TextPart(t) for t in _texts(item.get("content"), "output_text")]
            parts += [TextPart(t) for t in _texts(item.get("content"), "refusal")]
        elif kind == "function_call":
            call_id, name, args = item.get("call_id"), item.get("name"), item.get("arguments", "{}")
            if not (_named(call_id) and _named(name) and isinstance(args, str)):
                _proto("function_call item needs a call_id, a name and string arguments")
            parts.append(ToolCallPart(call_id, name, args or "{}"))
        elif kind == "reasoning":
            text = "".join(_texts(item.get("summary"), "summary_text"))
            if text:
                parts.append(ThinkingPart(text))
    finish = _finish(data, any(isinstance(p, ToolCallPart) for p in parts))
    usage = usage_in(data["usage"]) if data.get("usage") is not None else None
    created = data.get("created_at")
    return Response(id=str(data.get("id") or ""), model=str(data.get("model") or ""),
                    message=Message("assistant", tuple(parts)), finish_reason=finish,
                    usage=usage, created=created if isinstance(created, int) else 0)


# ---------------------------------------------------------------- streams

@dataclass(slots=True)
class _Call:
    index: int     # canonical tool-call index


class StreamDecoder:
    """Responses stream events (parsed JSON) -> canonical events. Function calls are
    keyed by their ``output_index`` and numbered in the order they start."""

    def __init__(self) -> None:
        self._started = False
        self._finish: FinishReason | None = None
        self._calls: dict[int, _Call] = {}

    @property
    def finished(self) -> bool:
        """Whether the response finished; False after the last event means it was cut."""
        return self._finish is not None

    def feed(self, event: object) -> list[StreamEvent]:
        if not isinstance(event, dict):
            _proto("stream event is not a JSON object")
        kind = event.get("type")
        out: list[StreamEvent] = []
        if kind == "error":
            message = event.get("message")
            raise UpstreamError(f"upstream stream failed: "
                                f"{message if isinstance(message, str) else 'no message'}")
        if kind == "response.created" or not self._started:
            resp = event.get("response") if isinstance(event.get("response"), dict) else {}
            self._started = True
            created = resp.get("created_at")
            out.append(StreamStart(str(resp.get("id") or ""), str(resp.get("model") or ""),
                                   created if isinstance(created, int) else 0))
            if kind == "response.created":
                return out
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            out.append(TextDelta(event["delta"]))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta") \
                and isinstance(event.get("delta"), str):
            out.append(ThinkingDelta(event["delta"]))
        elif kind == "response.output_item.added":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                if not (_named(item.get("call_id")) and _named(item.get("name"))):
                    _proto("function_call item needs a call_id and a name")
                call = self._calls[self._index(event)] = _Call(len(self._calls))
                out.append(ToolCallStart(call.index, item["call_id"], item["name"]))
                if isinstance(item.get("arguments"), str) and item["arguments"]:
                    out.append(ToolCallDelta(call.index, item["arguments"]))
        elif kind == "response.function_call_arguments.delta":
            call = self._calls.get(self._index(event))
            if call is None:
                _proto("sent arguments for a function call it never started")
            if isinstance(event.get("delta"), str) and event["delta"]:
                out.append(ToolCallDelta(call.index, event["delta"]))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            resp = event.get("response")
            if not isinstance(resp, dict):
                _proto(f"{kind} carries no response")
            self._finish = _finish(resp, bool(self._calls))
            if resp.get("usage") is not None:
                out.append(UsageEvent(usage_in(resp["usage"])))
            out.append(Finish(self._finish))
        return out

    def close(self) -> list[StreamEvent]:
        return []

    @staticmethod
    def _index(event: dict) -> int:
        index = event.get("output_index")
        if not isinstance(index, int) or isinstance(index, bool):
            _proto(f"{event.get('type')} has no output_index")
        return index
