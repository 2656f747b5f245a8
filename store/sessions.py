"""Session memory rows (X-Prism-Session): open, append a turn, compact, delete, purge.

Every function is one transaction and addresses a session by (account_id, id), so a
session is invisible to every other account: the caller cannot tell "someone else's"
from "none". Expiry is sliding: whatever touches a live session pushes expires_at to
now + ttl; a session past expires_at is treated as absent and removed on sight.

Stored messages are opaque JSON to the store (the gateway's session codec writes
them); the store only counts them, sums their token counts, and enforces the cap:
an append that would exceed ``max_messages`` hands the oldest to the caller's ``fold``
function, which condenses them into the summary in the same transaction, so the cap
holds however turns race.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from store.db import read_tx, write_tx
from store.models import Session

# (previous summary, envelopes removed) -> (new summary, its token count)
Fold = Callable[[str | None, list[dict[str, Any]]], tuple[str, int]]


@dataclass(frozen=True)
class SessionData:
    id: str
    account_id: str
    created_at: float
    updated_at: float
    expires_at: float
    system: str               # JSON list of system messages
    messages: str             # JSON list of {"t": tokens, "m": message}
    message_count: int
    tokens: int
    summary: str | None
    version: int


def _data(row: Session) -> SessionData:
    return SessionData(row.id, row.account_id, row.created_at, row.updated_at, row.expires_at,
                       row.system, row.messages, row.message_count, row.tokens, row.summary,
                       row.version)


def _live(db, account_id: str, session_id: str, now: float) -> Session | None:
    row = (Session.select().where((Session.account_id == account_id) & (Session.id == session_id))
           .first(db))
    if row is not None and row.expires_at <= now:
        _delete(db, account_id, session_id)
        return None
    return row


def _delete(db, account_id: str, session_id: str) -> int:
    return (Session.delete().where((Session.account_id == account_id) & (Session.id == session_id))
            .execute(db))


def open_session(db, account_id: str, session_id: str, *, now: float,
                 ttl: float) -> SessionData | None:
    """The live session, its expiry pushed to now + ttl; None if absent or expired."""
    with write_tx(db):
        row = _live(db, account_id, session_id, now)
        if row is None:
            return None
        row.expires_at = now + ttl
        (Session.update(expires_at=row.expires_at)
         .where((Session.account_id == account_id) & (Session.id == session_id)).execute(db))
        return _data(row)


def peek_session(db, account_id: str, session_id: str, *, now: float) -> SessionData | None:
    """The live session without touching its expiry (tests, the dashboard)."""
    with read_tx(db):
        row = (Session.select()
               .where((Session.account_id == account_id) & (Session.id == session_id)).first(db))
    return _data(row) if row is not None and row.expires_at > now else None


def append_turn(db, account_id: str, session_id: str, *, messages: list[dict[str, Any]],
                system: list[dict[str, Any]] | None, system_tokens: int, now: float,
                ttl: float, max_messages: int, fold: Fold) -> SessionData:
    """Append one turn's messages (creating the session if needed); ``system`` replaces
    the stored system prompt when given. Keeps at most ``max_messages``."""
    with write_tx(db):
        row = _live(db, account_id, session_id, now)
        if row is None:
            row = Session(account_id=account_id, id=session_id, created_at=now, updated_at=now,
                          expires_at=now + ttl)
            Session.insert(**row.__data__).execute(db)
            stored: list[dict[str, Any]] = []
        else:
            stored = json.loads(row.messages)
        stored.extend(messages)
        if system is not None:
            row.system = json.dumps(system, ensure_ascii=False, separators=(",", ":"))
            row.system_tokens = system_tokens
        if len(stored) > max_messages:
            cut = len(stored) - max_messages
            row.summary, row.summary_tokens = fold(row.summary, stored[:cut])
            stored = stored[cut:]
        _write(db, row, stored, now, ttl)
        return _data(row)


def compact_session(db, account_id: str, session_id: str, *, expect_version: int, drop: int,
                    summary: str, summary_tokens: int, now: float, ttl: float) -> SessionData | None:
    """Replace the oldest ``drop`` messages by ``summary`` (which already includes any
    earlier summary), if nothing was appended since ``expect_version`` was read.
    None when the session changed or went away; the caller compacts another time."""
    with write_tx(db):
        row = _live(db, account_id, session_id, now)
        if row is None or row.version != expect_version:
            return None
        stored = json.loads(row.messages)[drop:]
        row.summary, row.summary_tokens = summary, summary_tokens
        _write(db, row, stored, now, ttl)
        return _data(row)


def _write(db, row: Session, stored: list[dict[str, Any]], now: float, ttl: float) -> None:
    row.messages = json.dumps(stored, ensure_ascii=False, separators=(",", ":"))
    row.message_count = len(stored)
    row.tokens = row.system_tokens + row.summary_tokens + sum(int(e.get("t", 0)) for e in stored)
    row.updated_at = now
    row.expires_at = now + ttl
    row.version += 1
    (Session.update(system=row.system, system_tokens=row.system_tokens, messages=row.messages,
                    message_count=row.message_count, tokens=row.tokens, summary=row.summary,
                    summary_tokens=row.summary_tokens, updated_at=now, expires_at=row.expires_at,
                    version=row.version)
     .where((Session.account_id == row.account_id) & (Session.id == row.id)).execute(db))


def delete_session(db, account_id: str, session_id: str, *, now: float) -> bool:
    """True if a live session was deleted; an expired one is removed and reads as absent."""
    with write_tx(db):
        row = _live(db, account_id, session_id, now)
        return row is not None and _delete(db, account_id, session_id) == 1


def purge_sessions(db, now: float) -> int:
    """Delete every expired session; returns how many."""
    with write_tx(db):
        return Session.delete().where(Session.expires_at <= now).execute(db)
