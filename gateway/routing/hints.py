"""The X-Prism-* request headers that steer routing, read once per request (pure).

    X-Prism-Mode: eco | balanced | sport     how to pick for model "any"/"auto"
    X-Prism-Model-Prefer: <id or alias>      pin a model (routing/select)
    X-Prism-Session: <id>                    keep the conversation server-side

Every dialect's route gets these the same way: http/common.authenticate parses them
onto the CallContext, so a new blueprint needs no code for them. Values are checked
here so a typo fails with a message naming the header, before any money moves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from gateway import errors
from gateway.config import MODES

MODE_HEADER = "X-Prism-Mode"
PREFER_HEADER = "X-Prism-Model-Prefer"
SESSION_HEADER = "X-Prism-Session"

# Session ids are chosen by the client: keep them printable, short and unambiguous in logs.
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


@dataclass(frozen=True)
class RoutingHints:
    mode: str | None = None
    prefer: str | None = None
    session: str | None = None


NO_HINTS = RoutingHints()


def from_headers(get: Callable[[str], str | None]) -> RoutingHints:
    """``get`` looks a header up case-insensitively (Quart's ``request.headers.get``)."""
    mode = (get(MODE_HEADER) or "").strip().lower() or None
    if mode is not None and mode not in MODES:
        raise errors.InvalidRequest(f"{MODE_HEADER} must be one of {', '.join(MODES)}, not "
                                    f"{mode[:40]!r}", field=MODE_HEADER)
    prefer = (get(PREFER_HEADER) or "").strip() or None
    if prefer is not None and len(prefer) > 200:
        raise errors.InvalidRequest(f"{PREFER_HEADER} is too long", field=PREFER_HEADER)
    session = (get(SESSION_HEADER) or "").strip() or None
    if session is not None and not _SESSION_ID_RE.fullmatch(session):
        raise errors.InvalidRequest(
            f"{SESSION_HEADER} must be 1-128 characters of letters, digits and . _ : @ -",
            field=SESSION_HEADER)
    if mode is None and prefer is None and session is None:
        return NO_HINTS
    return RoutingHints(mode, prefer, session)
