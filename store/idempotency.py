"""Idempotency keys: the first request with a key runs, later ones replay its response.

A key belongs to one account. `claim` is one BEGIN IMMEDIATE transaction that either
makes the caller the owner of a fresh 'pending' record, or says what is there:

    no record, or one past its 24 h expiry, or a pending one whose lease ran out
                                  -> claimed (the caller runs the request)
    same body, done               -> replay the stored response
    same body, pending            -> in progress (someone else is running it)
    different body                -> reused (refused, whatever the state)

The owner then `complete`s the record with the response, or `release`s it when the
request failed without costing anything, so a retry can run again. Every change is
guarded by the owner's claim token, so an owner whose lease lapsed cannot overwrite
the record of the request that took over.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from store.db import StoreError, read_tx, write_tx

TTL_SECONDS = 24 * 3600.0

_GET = """SELECT body_hash, state, claim, request_id, status, headers_json, body, complete,
 lease_until, expires_at FROM idempotency_record WHERE account_id = ? AND key = ?"""
_CLAIM = """INSERT INTO idempotency_record (account_id, key, body_hash, state, claim,
 request_id, status, headers_json, body, complete, created_at, lease_until, expires_at)
 VALUES (?, ?, ?, 'pending', ?, ?, NULL, NULL, NULL, 1, ?, ?, ?)
 ON CONFLICT (account_id, key) DO UPDATE SET body_hash = excluded.body_hash,
 state = 'pending', claim = excluded.claim, request_id = excluded.request_id, status = NULL,
 headers_json = NULL, body = NULL, complete = 1, created_at = excluded.created_at,
 lease_until = excluded.lease_until, expires_at = excluded.expires_at"""
_COMPLETE = """UPDATE idempotency_record SET state = 'done', status = ?, headers_json = ?,
 body = ?, complete = ? WHERE account_id = ? AND key = ? AND claim = ? AND state = 'pending'"""
_RELEASE = """DELETE FROM idempotency_record
 WHERE account_id = ? AND key = ? AND claim = ? AND state = 'pending'"""


class KeyReused(StoreError):
    """The key was used for a different request body."""


class InProgress(StoreError):
    def __init__(self, lease_until: float) -> None:
        super().__init__("a request with this idempotency key is still running")
        self.lease_until = lease_until


@dataclass(frozen=True)
class Stored:
    request_id: str | None
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    complete: bool


@dataclass(frozen=True)
class Claim:
    """Either `token` (the caller owns a pending record) or `replay` is set."""
    token: str | None = None
    replay: Stored | None = None


def claim(db, account_id: str, key: str, body_hash: str, *, request_id: str,
          lease_seconds: float, ttl_seconds: float = TTL_SECONDS,
          now: float | None = None) -> Claim:
    """Claim `key` for a request with body hash `body_hash`, or say what is there
    (raises KeyReused or InProgress)."""
    now = time.time() if now is None else now
    with write_tx(db):
        row = db.execute_sql(_GET, (account_id, key)).fetchone()
        if row is not None and row[9] > now:
            found_hash, state, _, rid, status, headers, body, complete, lease, _ = row
            if found_hash != body_hash:
                raise KeyReused(f"idempotency key {key!r} was used for another body")
            if state == "done":
                return Claim(replay=Stored(rid, status, [tuple(h) for h in json.loads(headers)],
                                           bytes(body or b""), bool(complete)))
            if lease > now:
                raise InProgress(lease)
        token = secrets.token_hex(8)
        db.execute_sql(_CLAIM, (account_id, key, body_hash, token, request_id, now,
                                now + lease_seconds, now + ttl_seconds))
    return Claim(token=token)


def complete(db, account_id: str, key: str, token: str, *, status: int,
             headers: list[tuple[str, str]], body: bytes, complete: bool = True) -> bool:
    """Store the response of the claimed request; False if the claim was lost."""
    with write_tx(db):
        cur = db.execute_sql(_COMPLETE, (status, json.dumps(headers), body, int(complete),
                                         account_id, key, token))
    return cur.rowcount == 1


def release(db, account_id: str, key: str, token: str) -> bool:
    """Forget a claim whose request produced nothing worth replaying."""
    with write_tx(db):
        cur = db.execute_sql(_RELEASE, (account_id, key, token))
    return cur.rowcount == 1


def purge_idempotency(db, now: float, *, pending_too: bool = False) -> int:
    """Drop records past their expiry; at start-up (`pending_too`) also every pending
    record, since the process that owned them is gone."""
    with write_tx(db):
        cur = db.execute_sql("DELETE FROM idempotency_record WHERE expires_at <= ?"
                             + (" OR state = 'pending'" if pending_too else ""), (now,))
    return cur.rowcount


def get_record(db, account_id: str, key: str) -> dict | None:
    with read_tx(db):
        row = db.execute_sql(_GET, (account_id, key)).fetchone()
    if row is None:
        return None
    names = ("body_hash", "state", "claim", "request_id", "status", "headers_json", "body",
             "complete", "lease_until", "expires_at")
    return dict(zip(names, row))
