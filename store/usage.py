"""An account's own usage, read from its request-log rows: lists, totals, export pages
and one request's record with the money it moved. Read-only; every query is scoped
to one account id, which the customer routes take from the caller's key.

Time filters are unix seconds, `start` inclusive and `end` exclusive.
"""
from __future__ import annotations

from typing import Any

from store.db import read_tx
from store.pg import is_postgres

COLUMNS = ("request_id", "created_at", "key_id", "route", "dialect", "model", "mode",
           "provider", "status", "error_type", "latency_ms", "tokens_in", "tokens_out",
           "cached_tokens", "cost_micros", "estimated", "failover", "stream", "markup_micros")
_BOOLS = ("estimated", "failover", "stream")


def _where(account_id: str, start: float | None, end: float | None, mode: str | None,
           model: str | None) -> tuple[str, list]:
    clauses, params = ["account_id = ?"], [account_id]
    for clause, value in (("created_at >= ?", start), ("created_at < ?", end),
                          ("mode = ?", mode), ("model = ?", model)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return " AND ".join(clauses), params


def _row(values: tuple) -> dict[str, Any]:
    row = dict(zip(COLUMNS, values))
    for name in _BOOLS:
        row[name] = bool(row[name])
    row["markup_micros"] = row["markup_micros"] or 0
    return row


def usage_rows(db, account_id: str, *, start: float | None = None, end: float | None = None,
               mode: str | None = None, model: str | None = None, limit: int = 100,
               offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """(rows newest first, total matching rows)."""
    where, params = _where(account_id, start, end, mode, model)
    with read_tx(db):
        total = db.execute_sql(f"SELECT COUNT(*) FROM request_log WHERE {where}", params).fetchone()[0]
        rows = db.execute_sql(
            f"SELECT {', '.join(COLUMNS)} FROM request_log WHERE {where} "
            "ORDER BY created_at DESC, request_id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset)).fetchall()
    return [_row(r) for r in rows], total


def usage_page(db, account_id: str, *, start: float | None = None, end: float | None = None,
               after: tuple[float, str] | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Oldest first, the `limit` rows after the (created_at, request_id) cursor: the
    export streams these so a year of rows never sits in memory at once."""
    where, params = _where(account_id, start, end, None, None)
    if after is not None:
        where += " AND (created_at > ? OR (created_at = ? AND request_id > ?))"
        params += [after[0], after[0], after[1]]
    with read_tx(db):
        rows = db.execute_sql(
            f"SELECT {', '.join(COLUMNS)} FROM request_log WHERE {where} "
            "ORDER BY created_at, request_id LIMIT ?", (*params, limit)).fetchall()
    return [_row(r) for r in rows]


_SUMS = ("COUNT(*), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0), "
         "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cost_micros), 0), "
         "COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0), "
         "COALESCE(SUM(markup_micros), 0)")
_SUM_NAMES = ("requests", "tokens_in", "tokens_out", "cached_tokens", "cost_micros", "errors",
              "markup_micros")


def usage_summary(db, account_id: str, *, start: float | None = None, end: float | None = None,
                  mode: str | None = None, model: str | None = None) -> dict[str, Any]:
    """Totals overall, by model, by mode and by UTC day (integer micro-USD)."""
    where, params = _where(account_id, start, end, mode, model)
    groups = {"by_model": "model", "by_mode": "mode",
              "by_day": "strftime('%Y-%m-%d', created_at, 'unixepoch')"}
    if is_postgres(db):
        groups["by_day"] = ("to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', "
                            "'YYYY-MM-DD')")
    out: dict[str, Any] = {}
    with read_tx(db):
        out["totals"] = dict(zip(_SUM_NAMES, db.execute_sql(
            f"SELECT {_SUMS} FROM request_log WHERE {where}", params).fetchone()))
        for name, expr in groups.items():
            rows = db.execute_sql(f"SELECT {expr} AS g, {_SUMS} FROM request_log WHERE {where} "
                                  "GROUP BY g ORDER BY g", params).fetchall()
            out[name] = [{"key": r[0], **dict(zip(_SUM_NAMES, r[1:]))} for r in rows]
    return out


def request_record(db, account_id: str, request_id: str) -> dict[str, Any] | None:
    """One request's log row with how its money moved, or None if it is not this
    account's: the wallet ledger rows (with the balance after each) and the window
    hold, if the plan's window paid."""
    with read_tx(db):
        row = db.execute_sql(f"SELECT {', '.join(COLUMNS)} FROM request_log "
                             "WHERE request_id = ? AND account_id = ?",
                             (request_id, account_id)).fetchone()
        if row is None:
            return None
        entries = db.execute_sql(
            "SELECT e.kind, e.amount_micros, e.balance_after, e.created_at FROM ledger_entry e "
            "JOIN wallet w ON w.id = e.wallet_id WHERE e.request_id = ? AND w.account_id = ? "
            "ORDER BY e.id", (request_id, account_id)).fetchall()
        hold = db.execute_sql(
            "SELECT state, amount_micros, charged_micros, used_input_tokens, used_output_tokens "
            "FROM quota_hold WHERE request_id = ? AND account_id = ?",
            (request_id, account_id)).fetchone()
    out = {"log": _row(row),
           "wallet_entries": [dict(zip(("kind", "amount_micros", "balance_after", "created_at"), e))
                              for e in entries],
           "window_hold": None}
    if hold is not None:
        out["window_hold"] = dict(zip(("state", "amount_micros", "charged_micros",
                                       "used_input_tokens", "used_output_tokens"), hold))
    return out
