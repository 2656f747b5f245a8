"""Canonical stream events -> Responses API stream events (dicts; SSE framing elsewhere).

The encoder is a small state machine over output items. Each item has an explicit
record (kind, output_index, id, accumulated text or arguments, done or not); at most
one text-like item (a message or a reasoning item) is open at a time, while tool calls
keep their own per-index records because canonical deltas address them by index.

    first event            -> response.created, response.in_progress
    TextDelta              -> (close an open reasoning item) open a message item:
                              output_item.added, content_part.added; then
                              output_text.delta
    ThinkingDelta          -> the same for a reasoning item, with
                              reasoning_summary_part.added / _text.delta
    ToolCallStart(i)       -> close the open text item; output_item.added (function_call)
    ToolCallDelta(i)       -> function_call_arguments.delta for call i's item
    Finish(reason)         -> close every open item, in output order:
                              *.done events and output_item.done
    UsageEvent             -> remembered for the final response
    finish()               -> response.completed | response.incomplete | response.failed
                              carrying the whole Response object, usage included
    fail(...)              -> error, then response.failed (an upstream failure mid-stream)
    hosted_open/_done      -> a hosted tool's item the gateway ran itself (file_search_call):
                              output_item.added, response.<type>.<stage>..., .completed,
                              output_item.done

Every event carries ``type`` and a ``sequence_number`` that counts up from 0.
Text that resumes after a tool call opens a new message item rather than reopening
the old one, because a closed item is final for the client.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.canonical import (
    Finish, FinishReason, StreamEvent, TextDelta, ThinkingDelta, ToolCallDelta,
    ToolCallStart, Usage, UsageEvent,
)
from gateway.codecs.openai_responses_out import (
    call_item, item_id, message_item, reasoning_item, response_object, status_of, text_part,
)

_PREFIX = {"message": "msg", "function_call": "fc", "reasoning": "rs"}


@dataclass(slots=True)
class _Item:
    kind: Literal["message", "function_call", "reasoning", "hosted"]
    output_index: int
    id: str
    pieces: list[str] = field(default_factory=list)   # text, thinking or argument fragments
    call_id: str = ""
    name: str = ""
    signature: str | None = None
    done: bool = False
    body: dict | None = None      # a hosted tool's item as the gateway last described it

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class StreamEncoder:
    """Canonical events for one response -> Responses stream event dicts.

    ``echo`` is openai_responses.request_echo(body); ``final`` holds the Response
    object once finish() or fail() has run, for the caller to store.
    """

    def __init__(self, response_id: str, model: str, created_at: int, echo: dict) -> None:
        self.response_id, self.model, self.created_at, self.echo = response_id, model, created_at, echo
        self._seq = 0
        self._started = False
        self._items: list[_Item] = []
        self._open_text: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._names = echo.get("namespaces") or {}
        self.final: dict | None = None

    # ------------------------------------------------------------ public

    def encode(self, ev: StreamEvent) -> list[dict]:
        out: list[dict] = []
        self._start(out)
        if isinstance(ev, TextDelta) and ev.text:
            item = self._text_item("message", out)
            item.pieces.append(ev.text)
            out.append(self._event("response.output_text.delta", item_id=item.id,
                                   output_index=item.output_index, content_index=0,
                                   delta=ev.text, logprobs=[]))
        elif isinstance(ev, ThinkingDelta):
            if ev.text or (ev.signature and self._open_text is not None
                           and self._open_text.kind == "reasoning"):
                item = self._text_item("reasoning", out)
                item.signature = ev.signature or item.signature
                if ev.text:
                    item.pieces.append(ev.text)
                    out.append(self._event("response.reasoning_summary_text.delta",
                                           item_id=item.id, output_index=item.output_index,
                                           summary_index=0, delta=ev.text))
        elif isinstance(ev, ToolCallStart):
            self._close_text(out)
            item = self._add("function_call", out, call_id=ev.id, name=ev.name)
            self._calls[ev.index] = item
        elif isinstance(ev, ToolCallDelta) and ev.arguments:
            item = self._calls.get(ev.index)
            if item is not None and not item.done:
                item.pieces.append(ev.arguments)
                out.append(self._event("response.function_call_arguments.delta", item_id=item.id,
                                       output_index=item.output_index, delta=ev.arguments))
        elif isinstance(ev, Finish):
            self._finish = ev.reason
            self._close_all(out)
        elif isinstance(ev, UsageEvent):
            self._usage = ev.usage
        return out

    def finish(self, fallback_usage: Usage | None = None) -> list[dict]:
        """The closing events of a stream that ended well. ``fallback_usage`` (what the
        gateway billed) stands in when the upstream never reported usage."""
        out: list[dict] = []
        self._start(out)
        self._close_all(out)
        if not any(item.kind not in ("reasoning", "hosted") for item in self._items):
            # A reply with neither text nor calls is still one (empty) message.
            self._text_item("message", out)
            self._close_all(out)
        status = status_of(self._finish)
        self.final = self._response(status, self._output(), self._usage or fallback_usage)
        kind = {"completed": "response.completed", "incomplete": "response.incomplete",
                "failed": "response.failed"}[status]
        out.append(self._event(kind, response=self.final))
        return out

    def fail(self, code: str, message: str) -> list[dict]:
        """An error event and response.failed, for an upstream failure mid-stream.
        Items still open are reported in the failed response as incomplete."""
        out: list[dict] = []
        self._start(out)
        out.append(self._event("error", code=code, message=message, param=None))
        error = {"code": "rate_limit_exceeded" if code == "rate_limited" else "server_error",
                 "message": message}
        self.final = self._response("failed", self._output(), self._usage, error=error)
        out.append(self._event("response.failed", response=self.final))
        return out

    def hosted_open(self, item: dict, stages: tuple[str, ...]) -> list[dict]:
        """Open the output item of a hosted tool the gateway runs itself (``item`` is
        e.g. a file_search_call with its id): output_item.added, then one
        ``response.<type>.<stage>`` event per stage (in_progress, searching)."""
        out: list[dict] = []
        self._start(out)
        self._close_text(out)
        rec = _Item("hosted", len(self._items), item["id"], body=dict(item))
        self._items.append(rec)
        out.append(self._event("response.output_item.added", output_index=rec.output_index,
                               item=self._snapshot(rec, "in_progress")))
        for stage in stages:
            out.append(self._event(f"response.{item['type']}.{stage}", item_id=rec.id,
                                   output_index=rec.output_index))
        return out

    def hosted_done(self, item: dict) -> list[dict]:
        """Close a hosted tool's item with its final fields: response.<type>.completed
        and output_item.done."""
        rec = next(i for i in self._items if i.kind == "hosted" and i.id == item["id"])
        rec.body, rec.done = dict(item), True
        where = {"item_id": rec.id, "output_index": rec.output_index}
        return [self._event(f"response.{item['type']}.completed", **where),
                self._event("response.output_item.done", output_index=rec.output_index,
                            item=self._snapshot(rec, "completed"))]

    # ------------------------------------------------------------ items

    def _start(self, out: list[dict]) -> None:
        if not self._started:
            self._started = True
            snapshot = self._response("in_progress", [], None)
            out.append(self._event("response.created", response=snapshot))
            out.append(self._event("response.in_progress", response=snapshot))

    def _event(self, kind: str, **fields: Any) -> dict:
        ev = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return ev

    def _response(self, status: str, output: list[dict], usage: Usage | None,
                  error: dict | None = None) -> dict:
        return response_object(response_id=self.response_id, model=self.model,
                               created_at=self.created_at, echo=self.echo, status=status,
                               output=output, usage=usage, finish=self._finish, error=error)

    def _add(self, kind: Literal["message", "function_call", "reasoning"], out: list[dict],
             **extra: str) -> _Item:
        index = len(self._items)
        item = _Item(kind, index, item_id(_PREFIX[kind], self.response_id, index), **extra)
        self._items.append(item)
        out.append(self._event("response.output_item.added", output_index=index,
                               item=self._snapshot(item, "in_progress")))
        return item

    def _text_item(self, kind: Literal["message", "reasoning"], out: list[dict]) -> _Item:
        """The open item of this kind, opening one (and closing the other kind) if needed."""
        if self._open_text is not None and self._open_text.kind == kind:
            return self._open_text
        self._close_text(out)
        item = self._add(kind, out)
        self._open_text = item
        if kind == "message":
            out.append(self._event("response.content_part.added", item_id=item.id,
                                   output_index=item.output_index, content_index=0,
                                   part=text_part("")))
        else:
            out.append(self._event("response.reasoning_summary_part.added", item_id=item.id,
                                   output_index=item.output_index, summary_index=0,
                                   part={"type": "summary_text", "text": ""}))
        return item

    def _close_text(self, out: list[dict]) -> None:
        if self._open_text is not None:
            self._close(self._open_text, out)
            self._open_text = None

    def _close_all(self, out: list[dict]) -> None:
        self._open_text = None
        for item in self._items:
            if not item.done and item.kind != "hosted":
                self._close(item, out)

    def _close(self, item: _Item, out: list[dict]) -> None:
        item.done = True
        where = {"item_id": item.id, "output_index": item.output_index}
        if item.kind == "message":
            out.append(self._event("response.output_text.done", **where, content_index=0,
                                   text=item.text, logprobs=[]))
            out.append(self._event("response.content_part.done", **where, content_index=0,
                                   part=text_part(item.text)))
        elif item.kind == "reasoning":
            out.append(self._event("response.reasoning_summary_text.done", **where,
                                   summary_index=0, text=item.text))
            out.append(self._event("response.reasoning_summary_part.done", **where,
                                   summary_index=0,
                                   part={"type": "summary_text", "text": item.text}))
        else:
            out.append(self._event("response.function_call_arguments.done", **where,
                                   name=tuple(self._names.get(item.name, ("", item.name)))[1],
                                   arguments=item.text or "{}"))
        out.append(self._event("response.output_item.done", output_index=item.output_index,
                               item=self._snapshot(item, self._item_status(item))))

    def _item_status(self, item: _Item) -> str:
        if not item.done:
            return "incomplete"
        # A message cut by the token limit is incomplete; a call that finished is not.
        if item.kind == "message" and status_of(self._finish) == "incomplete":
            return "incomplete"
        return "completed"

    def _snapshot(self, item: _Item, status: str) -> dict:
        if item.kind == "hosted":
            return {**(item.body or {}), "status": status}
        if item.kind == "message":
            return message_item(item.id, item.text, status)
        if item.kind == "reasoning":
            return reasoning_item(item.id, item.text, item.signature, status)
        return call_item(item.id, item.call_id, item.name,
                         item.text or ("" if status == "in_progress" else "{}"), status, self._names)

    def _output(self) -> list[dict]:
        return [self._snapshot(item, self._item_status(item)) for item in self._items]
