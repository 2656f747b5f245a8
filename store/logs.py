"""The request log: one row per request the gateway answered after authenticating it.

Rows normally arrive inside the settle or void transaction of the request's hold
(store.ledger), so the hot path costs one write after the upstream call; requests
that never held money (refused with 402 or 400) use `insert_request_log`.
"""
from __future__ import annotations

import time
from types import MappingProxyType

import peewee as pw

from store.db import DuplicateRequest, read_tx, write_tx
from store.models import RequestLog

_NAMES = tuple(field.name for field in RequestLog._meta.sorted_fields)
_DEFAULTS = MappingProxyType({field.name: field.default
                              for field in RequestLog._meta.sorted_fields
                              if field.default is not None})
_NEEDED = frozenset({"route", "dialect", "status"})

# Hand-written SQL: this insert rides on every settlement, and peewee's query builder
# costs about twenty times what SQLite does for it.
_COLUMNS = ", ".join(_NAMES)
_PLACES = ", ".join("?" * len(_NAMES))
_INSERT = f"INSERT INTO request_log ({_COLUMNS}) VALUES ({_PLACES})"
# A settlement's log is the final word on its request and must never be the reason
# a settlement fails, so it replaces any earlier row for the same request.
# (ON CONFLICT rather than SQLite's INSERT OR REPLACE: PostgreSQL speaks it too.)
_UPSERT = (f"INSERT INTO request_log ({_COLUMNS}) VALUES ({_PLACES}) "
           "ON CONFLICT (request_id) DO UPDATE SET "
           + ", ".join(f"{n} = excluded.{n}" for n in _NAMES if n != "request_id"))


def check_log_fields(fields: dict, needed: frozenset = _NEEDED) -> dict:
    """A copy of `fields` after checking every name is a RequestLog column and the
    ones with no sensible default are present. Runs before any transaction starts,
    so a malformed log can never half-apply a settlement."""
    unknown = fields.keys() - set(_NAMES)
    if unknown:
        raise TypeError(f"unknown request log fields: {sorted(unknown)}")
    missing = needed - fields.keys()
    if missing:
        raise TypeError(f"request log is missing: {sorted(missing)}")
    return dict(fields)


def write_log(db, fields: dict, *, replace: bool) -> None:
    """Insert a checked row inside the caller's transaction."""
    values = tuple(fields.get(name, _DEFAULTS.get(name)) for name in _NAMES)
    db.execute_sql(_UPSERT if replace else _INSERT, values)


def insert_request_log(db, **fields) -> None:
    """Log a request that never had a hold. `request_id`, `route`, `dialect` and
    `status` are required; `created_at` defaults to now. Raises DuplicateRequest if
    the request already has a row."""
    row = check_log_fields(fields, _NEEDED | {"request_id"})
    row.setdefault("created_at", time.time())
    with write_tx(db):
        try:
            write_log(db, row, replace=False)
        except pw.IntegrityError:
            raise DuplicateRequest(row["request_id"]) from None


def request_logs(db, *, account_id: str | None = None,
                 limit: int = 100) -> list[RequestLog]:
    """The most recent rows, newest first."""
    query = (RequestLog.select()
             .order_by(RequestLog.created_at.desc(), RequestLog.request_id)
             .limit(limit))
    if account_id is not None:
        query = query.where(RequestLog.account_id == account_id)
    with read_tx(db):
        return list(query.execute(db))
