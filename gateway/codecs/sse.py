"""Server-sent events framing: bytes off the wire into events, and events into bytes.

Owns the WHATWG EventSource parsing rules (line endings, fields, comments, BOM,
dispatch on a blank line) and nothing about what an event's data means; the dialect
codecs parse the JSON inside. The decoder is incremental and split-invariant: feeding
a stream in one piece or one byte at a time yields the same events, because upstream
TCP chunking is arbitrary and must never change what we see.

Two deliberate choices:
- ``SSEEvent.event`` is None when the stream named no event type (the spec would say
  "message"); callers then tell "unnamed" from an explicit ``event: message``.
- ``close()`` dispatches a pending event whose final blank line never came, treating
  the end of the stream as the end of the line. The spec discards it, but several
  OpenAI-compatible servers end with ``data: [DONE]\\n`` and nothing after; losing that
  would make a complete stream look cut. A stream cut mid-JSON still fails loudly at
  the JSON parse, so nothing truncated passes as whole.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from gateway.errors import UpstreamProtocolError

__all__ = ["SSEEvent", "SSEDecoder", "encode_event"]

_EOL = re.compile(r"\r\n|\r|\n")
# Bounded so int() never meets Python's limit on digit strings; no sane retry is longer.
_DIGITS = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental SSE parser: ``feed`` bytes as they arrive, ``close`` at the end.

    ``max_event_bytes`` bounds both one line and one event's accumulated data, so a
    hostile upstream that never sends a newline cannot grow our memory without limit.
    It is counted in decoded characters, which never exceed the bytes that made them.
    """

    def __init__(self, max_event_bytes: int = 1_048_576) -> None:
        self._max = max_event_bytes
        # errors="replace" is what the spec mandates for invalid UTF-8; the
        # incremental decoder also holds back a multi-byte character split by a feed.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True      # no character seen yet, so a BOM may still come
        self._after_cr = False     # last line ended in \r; a leading \n belongs to it
        self._partial: list[str] = []
        self._partial_len = 0
        self._data: list[str] = []
        self._data_len = 0
        self._event: str | None = None
        self._retry: int | None = None
        self._closed = False
        # Per the spec the last event id outlives the event that set it.
        self.last_event_id: str | None = None
        # The most recent reconnection time the stream asked for, even on an event
        # that was never dispatched because it carried no data.
        self.retry: int | None = None

    def feed(self, data: bytes) -> list[SSEEvent]:
        if self._closed:
            raise RuntimeError("SSEDecoder.feed after close")
        return self._text(self._utf8.decode(data))

    def close(self) -> list[SSEEvent]:
        if self._closed:
            return []
        events = self._text(self._utf8.decode(b"", final=True))
        self._closed = True
        if self._partial:
            line = "".join(self._partial)
            self._partial, self._partial_len = [], 0
            self._line(line)
        if self._data:
            events.extend(self._dispatch())
        return events

    # ---------------------------------------------------------------- internals

    def _text(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._after_cr:
            self._after_cr = False
            if text[0] == "\n":
                text = text[1:]
        events: list[SSEEvent] = []
        pos = 0
        for m in _EOL.finditer(text):
            piece = text[pos:m.start()]
            if self._partial:
                self._partial.append(piece)
                line = "".join(self._partial)
                self._partial, self._partial_len = [], 0
            else:
                line = piece
            self._check(len(line), "line")
            if line:
                self._line(line)
            else:
                events.extend(self._dispatch())
            pos = m.end()
        rest = text[pos:]
        if rest:
            self._partial.append(rest)
            self._partial_len += len(rest)
            self._check(self._partial_len, "line")
        # A \r that ends this chunk may be the first half of a \r\n split by the feed.
        self._after_cr = text.endswith("\r")
        return events

    def _check(self, size: int, what: str) -> None:
        if size > self._max:
            raise UpstreamProtocolError(
                f"upstream sent an SSE {what} longer than {self._max} characters")

    def _line(self, line: str) -> None:
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_len += len(value) + 1
            self._check(self._data_len, "event")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if _DIGITS.fullmatch(value):
                self._retry = self.retry = int(value)
        # Unknown field names are ignored, as the spec requires.

    def _dispatch(self) -> list[SSEEvent]:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._data_len, self._event, self._retry = [], 0, None, None
        if not data:
            return []
        return [SSEEvent("\n".join(data), event or None, self.last_event_id, retry)]


def encode_event(data: str, event: str | None = None) -> bytes:
    """One SSE event; every kind of line break in ``data`` becomes its own data line."""
    if event is not None and _EOL.search(event):
        raise ValueError("an SSE event name cannot contain a line break")
    head = f"event: {event}\n" if event is not None else ""
    body = "".join(f"data: {line}\n" for line in _EOL.split(data))
    return (head + body + "\n").encode("utf-8")
