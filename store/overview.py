"""Read-only summaries for operators: accounts with their money, open holds, counts.

These feed the dashboard and the admin API, never the request path, so each is one
read transaction shaped for display (plain dicts, integer micro-USD).
"""
from __future__ import annotations

from typing import Any

from store.db import read_tx

_ACCOUNTS = """SELECT a.id, a.name, a.plan, a.created_at, w.balance_micros, w.held_micros,
 (SELECT COUNT(*) FROM api_key k WHERE k.account_id = a.id AND k.revoked_at IS NULL),
 (SELECT COUNT(*) FROM hold h WHERE h.wallet_id = w.id AND h.state = 'open')
 FROM account a JOIN wallet w ON w.account_id = a.id
 ORDER BY a.created_at, a.id LIMIT ?"""
_HOLDS = """SELECT h.id, w.account_id, h.request_id, h.amount_micros, h.created_at,
 h.expires_at FROM hold h JOIN wallet w ON w.id = h.wallet_id
 WHERE h.state = 'open' {where} ORDER BY h.created_at, h.id LIMIT ?"""
_COUNT_OPEN = "SELECT COUNT(*) FROM hold WHERE state = 'open'"


def account_summaries(db, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Every account (oldest first) with balance, held, available, active keys and
    open holds."""
    with read_tx(db):
        rows = db.execute_sql(_ACCOUNTS, (limit,)).fetchall()
    return [{"id": acct, "name": name, "plan": plan, "created_at": created,
             "balance_micros": balance, "held_micros": held,
             "available_micros": balance - held, "active_keys": keys, "open_holds": holds}
            for acct, name, plan, created, balance, held, keys, holds in rows]


def open_hold_rows(db, account_id: str | None = None, *,
                   limit: int = 1000) -> list[dict[str, Any]]:
    """Open holds, oldest first, with the account each belongs to."""
    where, params = ("AND w.account_id = ?", (account_id, limit)) if account_id else ("", (limit,))
    with read_tx(db):
        rows = db.execute_sql(_HOLDS.format(where=where), params).fetchall()
    return [{"id": hold, "account_id": acct, "request_id": request_id,
             "amount_micros": amount, "created_at": created, "expires_at": expires}
            for hold, acct, request_id, amount, created, expires in rows]


def count_open_holds(db) -> int:
    with read_tx(db):
        return db.execute_sql(_COUNT_OPEN).fetchone()[0]
