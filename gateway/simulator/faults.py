"""Per-request fault injection for the simulator: the directive syntax and its meaning.

A test steers one request by writing a directive into the text of the last user message
(the prompt survives every dialect translation the gateway does, headers and extra body
fields do not)::

    [[sim status=500 delay_ms=200 disconnect_after=3 chunk_chars=4 chunk_delay_ms=10
          retry_after=2 no_usage=1 message="quota gone"]]

Keys (all optional, any order, later directives override earlier ones):

    status            HTTP status to fail with (400..599); 429 carries retry_after
    delay_ms          wait before the first byte (``delay`` takes seconds)
    disconnect_after  cut the stream after this many stream events (0: before any)
    chunk_chars       characters per streamed text/argument fragment
    chunk_delay_ms    wait between streamed fragments (``chunk_delay`` takes seconds)
    retry_after       seconds for the Retry-After of a 429
    no_usage          1/true/yes: stream without a usage event (tests estimation)
    message           error message; quote it to include spaces

Unknown keys and unparsable values are ignored: a fuzzer or a typo must never crash the
simulator. The directive is removed from the prompt before the reply is derived.

Also here: the one mapping from a fault's status to the gateway's own exceptions.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from gateway import canonical as c
from gateway import errors

DIRECTIVE_RE = re.compile(r"\[\[sim(?:\s[^\]]*)?\]\]")
_PAIR_RE = re.compile(r"""([A-Za-z_]\w*)(?:=("[^"]*"|'[^']*'|\S+))?""")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    delay: float = 0.0
    disconnect_after: int | None = None
    chunk_chars: int | None = None
    chunk_delay: float | None = None
    retry_after: int | None = None
    no_usage: bool = False
    message: str | None = None


def last_user_text(req: c.Request) -> str:
    """Text of the last user message that has any text (tool-result turns carry none)."""
    for m in reversed(req.messages):
        if m.role == "user" and any(isinstance(p, c.TextPart) for p in m.parts):
            return m.text
    return ""


def strip_directives(text: str) -> str:
    return DIRECTIVE_RE.sub("", text)


def _int(v: str, lo: int, hi: int) -> int | None:
    try:
        n = int(v)
    except ValueError:
        return None
    return n if lo <= n <= hi else None


def _seconds(v: str, scale: float) -> float | None:
    try:
        x = float(v) * scale
    except ValueError:
        return None
    # A day is plenty; anything longer is a typo that would hang a test run.
    return x if math.isfinite(x) and 0 <= x <= 86_400 else None


def _value(key: str, raw: str) -> tuple[str, Any] | None:
    if key == "status":
        n = _int(raw, 100, 599)
        return None if n is None else ("status", n)
    if key in ("delay_ms", "delay"):
        x = _seconds(raw, 0.001 if key == "delay_ms" else 1.0)
        return None if x is None else ("delay", x)
    if key in ("chunk_delay_ms", "chunk_delay"):
        x = _seconds(raw, 0.001 if key == "chunk_delay_ms" else 1.0)
        return None if x is None else ("chunk_delay", x)
    if key == "disconnect_after":
        n = _int(raw, 0, 10**9)
        return None if n is None else ("disconnect_after", n)
    if key == "chunk_chars":
        n = _int(raw, 1, 10**9)
        return None if n is None else ("chunk_chars", n)
    if key == "retry_after":
        n = _int(raw, 0, 86_400)
        return None if n is None else ("retry_after", n)
    if key == "no_usage":
        low = raw.lower()
        if low in _TRUE or low in _FALSE:
            return ("no_usage", low in _TRUE)
        return None
    if key == "message":
        return ("message", raw)
    return None


def parse_directive_body(body: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in _PAIR_RE.finditer(body):
        key, raw = m.group(1).lower(), m.group(2)
        if raw is None:
            raw = "1"  # a bare flag such as ``no_usage``
        elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            raw = raw[1:-1]
        got = _value(key, raw)
        if got is not None:
            out[got[0]] = got[1]
    return out


def parse_fault(req: c.Request) -> Fault:
    """The fault the last user message asks for; Fault() when there is none."""
    fields: dict[str, Any] = {}
    for m in DIRECTIVE_RE.finditer(last_user_text(req)):
        fields.update(parse_directive_body(m.group(0)[len("[[sim"):-2]))
    return replace(Fault(), **fields) if fields else Fault()


def fault_error(fault: Fault) -> errors.PrismError | None:
    """The exception an upstream failing with ``fault.status`` maps to, if it fails."""
    status = fault.status
    if status is None or status < 400:
        return None
    message = fault.message or f"simulated upstream error {status}"
    if status == 429:
        return errors.RateLimited(message, retry_after=fault.retry_after)
    if status < 500:
        return errors.UpstreamClientError(message)
    return errors.UpstreamError(message)
