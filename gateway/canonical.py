"""The one internal model every dialect translates to and from.

Codecs turn wire bodies into these frozen values and back; nothing else in the gateway
looks at a wire shape. Each value checks itself in ``__post_init__`` so a codec bug
surfaces where it is made, not three layers later. No I/O library is imported here.

Conventions:
- System prompts are ordinary messages with role "system" (Anthropic's and Gemini's
  top-level system fields fold into them, in order).
- A tool's arguments travel as the JSON *text* the model produced; codecs that need an
  object parse it at their edge, so a half-streamed argument string is never reparsed.
- Stream events describe one choice (n=1 is the only mode we serve).
- Carried hints live in ``Request.metadata`` (codecs that know them honour them, the
  rest ignore them). ``response_modalities``: a list such as ``["TEXT", "IMAGE"]``
  asking the upstream for image output as well as text; set by gateway/media/images.py
  for chat-image routes, sent by the Gemini codec as generationConfig.responseModalities.
  Generated images come back as ImageParts (``data_b64`` + ``media_type``) in the
  assistant message; they have no stream event, so image output is asked for only
  on non-streamed calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
ROLES = ("system", "user", "assistant", "tool")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "error")


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise ValueError(what)


# ---------------------------------------------------------------- content parts

@dataclass(frozen=True)
class TextPart:
    text: str

    def __post_init__(self) -> None:
        _check(isinstance(self.text, str), "TextPart.text must be str")


@dataclass(frozen=True)
class ImagePart:
    """An image by URL or inline base64 data (exactly one of the two)."""
    url: str | None = None
    data_b64: str | None = None
    media_type: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        _check((self.url is None) != (self.data_b64 is None),
               "ImagePart needs exactly one of url and data_b64")


@dataclass(frozen=True)
class ToolCallPart:
    id: str
    name: str
    arguments: str = "{}"

    def __post_init__(self) -> None:
        _check(isinstance(self.id, str) and self.id != "", "ToolCallPart.id must be a non-empty str")
        _check(isinstance(self.name, str) and self.name != "", "ToolCallPart.name must be a non-empty str")
        _check(isinstance(self.arguments, str), "ToolCallPart.arguments must be JSON text")


@dataclass(frozen=True)
class ToolResultPart:
    tool_call_id: str
    content: tuple[Union[TextPart, ImagePart], ...] = ()
    is_error: bool = False

    def __post_init__(self) -> None:
        _check(isinstance(self.tool_call_id, str), "ToolResultPart.tool_call_id must be str")
        _check(all(isinstance(p, (TextPart, ImagePart)) for p in self.content),
               "ToolResultPart.content holds text and image parts only")

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(frozen=True)
class ThinkingPart:
    text: str
    signature: str | None = None


Part = Union[TextPart, ImagePart, ToolCallPart, ToolResultPart, ThinkingPart]
_PART_TYPES = (TextPart, ImagePart, ToolCallPart, ToolResultPart, ThinkingPart)

# Which parts each role may carry.
_ALLOWED: dict[str, tuple[type, ...]] = {
    "system": (TextPart,),
    "user": (TextPart, ImagePart, ToolResultPart),
    "assistant": (TextPart, ToolCallPart, ThinkingPart, ImagePart),
    "tool": (ToolResultPart,),
}


@dataclass(frozen=True)
class Message:
    role: Role
    parts: tuple[Part, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        _check(self.role in ROLES, f"unknown role {self.role!r}")
        _check(isinstance(self.parts, tuple), "Message.parts must be a tuple")
        for p in self.parts:
            _check(isinstance(p, _ALLOWED[self.role]),
                   f"a {self.role} message cannot carry {type(p).__name__}")

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCallPart))


# ---------------------------------------------------------------- request

@dataclass(frozen=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        _check(isinstance(self.name, str) and self.name != "", "Tool.name must be a non-empty str")
        _check(isinstance(self.parameters, dict), "Tool.parameters must be a JSON schema object")


@dataclass(frozen=True)
class ToolChoice:
    """auto: model decides; none: no tools; required: some tool; tool: the named one."""
    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None

    def __post_init__(self) -> None:
        _check(self.mode in ("auto", "none", "required", "tool"), f"unknown tool_choice {self.mode!r}")
        _check((self.mode == "tool") == (self.name is not None), "ToolChoice.name is set only for mode 'tool'")


@dataclass(frozen=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None

    def __post_init__(self) -> None:
        _check(self.kind in ("text", "json_object", "json_schema"), f"unknown response format {self.kind!r}")
        _check((self.kind == "json_schema") == (self.schema is not None),
               "ResponseFormat.schema is set exactly for kind 'json_schema'")


@dataclass(frozen=True)
class Request:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    include_usage: bool = False
    user: str | None = None
    seed: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(isinstance(self.model, str), "Request.model must be str")
        _check(isinstance(self.messages, tuple) and all(isinstance(m, Message) for m in self.messages),
               "Request.messages must be a tuple of Message")
        _check(self.max_tokens is None or (isinstance(self.max_tokens, int) and self.max_tokens > 0),
               "Request.max_tokens must be a positive int")
        _check(all(isinstance(s, str) for s in self.stop), "Request.stop holds strings")
        _check(all(isinstance(t, Tool) for t in self.tools), "Request.tools holds Tool values")


# ---------------------------------------------------------------- response

@dataclass(frozen=True)
class Usage:
    """Token counts for one call. ``input_tokens`` is the whole prompt, cached tokens
    included (OpenAI's prompt_tokens); ``cached_input_tokens`` is the part of it served
    from a cache. Codecs for dialects that report cache reads separately (Anthropic)
    add them back in so billing means the same thing whatever the upstream."""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    def __post_init__(self) -> None:
        for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 0, f"Usage.{name} must be a non-negative int")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Response:
    id: str
    model: str
    message: Message
    finish_reason: FinishReason
    usage: Usage | None = None
    created: int = 0

    def __post_init__(self) -> None:
        _check(self.message.role == "assistant", "Response.message must be an assistant message")
        _check(self.finish_reason in FINISH_REASONS, f"unknown finish reason {self.finish_reason!r}")


# ---------------------------------------------------------------- stream events
#
# A well-formed stream is: StreamStart, then any deltas, then Finish, with UsageEvents
# anywhere after StreamStart (upstreams put it before or after Finish; some repeat it
# on every chunk). The last UsageEvent wins.
# Tool calls are numbered by ``index`` in the order they start; ToolCallDelta for an
# index only follows that index's ToolCallStart.

@dataclass(frozen=True)
class StreamStart:
    id: str
    model: str
    created: int = 0


@dataclass(frozen=True)
class TextDelta:
    text: str

    def __post_init__(self) -> None:
        _check(isinstance(self.text, str), "TextDelta.text must be str")


@dataclass(frozen=True)
class ThinkingDelta:
    text: str = ""
    signature: str | None = None


@dataclass(frozen=True)
class ToolCallStart:
    index: int
    id: str
    name: str

    def __post_init__(self) -> None:
        _check(isinstance(self.index, int) and self.index >= 0, "ToolCallStart.index must be >= 0")
        _check(bool(self.id) and bool(self.name), "ToolCallStart needs an id and a name")


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    arguments: str

    def __post_init__(self) -> None:
        _check(isinstance(self.index, int) and self.index >= 0, "ToolCallDelta.index must be >= 0")
        _check(isinstance(self.arguments, str), "ToolCallDelta.arguments must be str")


@dataclass(frozen=True)
class Finish:
    reason: FinishReason

    def __post_init__(self) -> None:
        _check(self.reason in FINISH_REASONS, f"unknown finish reason {self.reason!r}")


@dataclass(frozen=True)
class UsageEvent:
    usage: Usage


StreamEvent = Union[StreamStart, TextDelta, ThinkingDelta, ToolCallStart, ToolCallDelta, Finish, UsageEvent]


def collect_stream(events: list[StreamEvent] | tuple[StreamEvent, ...]) -> Response:
    """Fold a complete event sequence into the Response it describes."""
    start: StreamStart | None = None
    text: list[str] = []
    thinking: list[str] = []
    signature: str | None = None
    calls: dict[int, list[str]] = {}
    heads: dict[int, ToolCallStart] = {}
    finish: FinishReason = "stop"
    usage: Usage | None = None
    for ev in events:
        if isinstance(ev, StreamStart):
            start = ev
        elif isinstance(ev, TextDelta):
            text.append(ev.text)
        elif isinstance(ev, ThinkingDelta):
            thinking.append(ev.text)
            signature = ev.signature or signature
        elif isinstance(ev, ToolCallStart):
            heads[ev.index] = ev
            calls[ev.index] = []
        elif isinstance(ev, ToolCallDelta):
            calls.setdefault(ev.index, []).append(ev.arguments)
        elif isinstance(ev, Finish):
            finish = ev.reason
        elif isinstance(ev, UsageEvent):
            usage = ev.usage
    parts: list[Part] = []
    if thinking:
        parts.append(ThinkingPart("".join(thinking), signature))
    if text:
        parts.append(TextPart("".join(text)))
    for i in sorted(heads):
        parts.append(ToolCallPart(heads[i].id, heads[i].name, "".join(calls[i]) or "{}"))
    return Response(
        id=start.id if start else "",
        model=start.model if start else "",
        created=start.created if start else 0,
        message=Message("assistant", tuple(parts)),
        finish_reason=finish,
        usage=usage,
    )


def response_events(resp: Response) -> list[StreamEvent]:
    """The inverse of collect_stream: one event per part, for replaying a Response."""
    out: list[StreamEvent] = [StreamStart(resp.id, resp.model, resp.created)]
    idx = 0
    for p in resp.message.parts:
        if isinstance(p, ThinkingPart):
            out.append(ThinkingDelta(p.text, p.signature))
        elif isinstance(p, TextPart):
            out.append(TextDelta(p.text))
        elif isinstance(p, ToolCallPart):
            out.append(ToolCallStart(idx, p.id, p.name))
            out.append(ToolCallDelta(idx, p.arguments))
            idx += 1
    out.append(Finish(resp.finish_reason))
    if resp.usage is not None:
        out.append(UsageEvent(resp.usage))
    return out
