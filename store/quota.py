"""Plan quota windows: admission, settlement and expiry of window holds.

Admission is one `INSERT ... SELECT ... WHERE usage + request <= limit` over every
limited dimension of every window (the usage sums of store.quota_sums), run inside
BEGIN IMMEDIATE, so no interleaving of writers can admit past a limit; the same
transaction falls through to the wallet (store.ledger) when the plan allows it.
Holds end exactly once through the same state guard as wallet holds; every hold and
ending appends a quota_entry row (the windows' books) and moves the hold's value in
its usage buckets, in the same transaction. The audit is store.quota_audit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import peewee as pw

from store import budgets as _budgets
from store.db import (AccountNotFound, DuplicateRequest, HoldNotFound, InsufficientFunds,
                      read_tx, write_tx)
from store.ledger import SettleResult, check_micros, post_close, post_reserve
from store.logs import check_log_fields, write_log
from store.models import new_id
from store.quota_audit import quota_problems
from store.quota_sums import (DIMENSIONS, Position, QuotaExceeded, WindowUsage,
                              _bump, _explain, _position, _sum_sql, account_position,
                              prune_usage)

__all__ = ["QUOTA_HOLD_PREFIX", "DIMENSIONS", "QuotaExceeded", "WindowUsage", "Position",
           "Admitted", "Closed", "is_quota_hold", "admit", "close", "expire_quota_holds",
           "expire_all_open_quota", "quota_holds", "account_position", "prune_usage",
           "quota_problems"]

QUOTA_HOLD_PREFIX = "qhold_"
_INSERT = """INSERT INTO quota_hold (id, account_id, plan, request_id, amount_micros,
 input_tokens, output_tokens, state, charged_micros, overrun_micros, used_input_tokens,
 used_output_tokens, created_at, expires_at, closed_at)
 SELECT ?, ?, ?, ?, ?, ?, ?, 'open', 0, 0, 0, 0, ?, ?, NULL"""
_CLOSE = """UPDATE quota_hold SET state = ?, closed_at = ?,
 charged_micros = CASE WHEN amount_micros < ? THEN amount_micros ELSE ? END,
 overrun_micros = CASE WHEN ? > amount_micros THEN ? - amount_micros ELSE 0 END,
 used_input_tokens = ?, used_output_tokens = ?
 WHERE id = ? AND state = 'open'
 RETURNING account_id, request_id, created_at, amount_micros, input_tokens, output_tokens,
 charged_micros, overrun_micros"""
_CLOSED = "SELECT account_id, charged_micros, overrun_micros FROM quota_hold WHERE id = ?"
_EXPIRE = """UPDATE quota_hold SET state = 'expired', closed_at = ?
 WHERE state = 'open' AND expires_at <= ?
 RETURNING id, account_id, request_id, created_at, amount_micros, input_tokens, output_tokens"""
_POST = """INSERT INTO quota_entry (account_id, kind, hold_id, request_id, amount_micros,
 input_tokens, output_tokens, estimated, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""


@dataclass(frozen=True)
class Admitted:
    hold_id: str
    funded_by: str             # 'window' or 'wallet'
    amount_micros: int
    position: Position | None


@dataclass(frozen=True)
class Closed:
    result: SettleResult       # balance_after is the wallet's for wallet holds, else 0
    funded_by: str
    position: Position | None
    # Org budget thresholds this ending crossed for the first time (store.budgets).
    alerts: tuple = ()


def is_quota_hold(hold_id: str) -> bool:
    return hold_id.startswith(QUOTA_HOLD_PREFIX)


# ---------------------------------------------------------------- admission

def _post(db, account_id: str, kind: str, hold_id: str, request_id: str, now: float,
          amount: int = 0, tin: int = 0, tout: int = 0, estimated: bool = False) -> None:
    db.execute_sql(_POST, (account_id, kind, hold_id, request_id, amount, tin, tout,
                           int(estimated), now))


def _guard(windows: Sequence[Any], account_id: str,
           need: tuple[int, int, int]) -> tuple[str, list]:
    """FROM and WHERE for the guarded INSERT: every limited dimension of every window
    must still have room after adding the request."""
    sources, guards, params, limits = [], [], [], []
    for k, w in enumerate(windows):
        sql, p = _sum_sql(w, account_id)
        sources.append(f"({sql}) AS w{k}")
        params += p
        for d, (col, limit) in enumerate(zip("uio", (w.limit_micros, w.limit_input,
                                                     w.limit_output))):
            if limit is not None:
                guards.append(f"w{k}.{col} + ? <= ?")
                limits += [need[d], limit]
    return f" FROM {', '.join(sources)} WHERE {' AND '.join(guards)}", params + limits


def admit(db, account_id: str, request_id: str, amount_micros: int, ttl_seconds: float, *,
          plan: str | None = None, windows: Sequence[Any] = (), input_tokens: int = 0,
          output_tokens: int = 0, fallthrough: bool = True, now: float | None = None,
          position: bool = True, budgets: Sequence[Any] = ()) -> Admitted:
    """Hold the worst case of a request: in the plan's windows if they have room,
    else (fallthrough) in the wallet, in one BEGIN IMMEDIATE transaction.

    Raises QuotaExceeded when the windows refuse and the plan does not fall through;
    InsufficientFunds (with `.quota` set to the window refusal, if any) when the wallet
    refuses; AccountNotFound; DuplicateRequest; store.budgets.BudgetExceeded when a
    hard key or org budget (`budgets`, counted in this same transaction) refuses.
    With `position`, the account's position after the hold is read in the same
    transaction."""
    check_micros(amount_micros, "hold", minimum=0)
    for n, what in ((input_tokens, "input tokens"), (output_tokens, "output tokens")):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{what} to hold must be a non-negative int, got {n!r}")
    if ttl_seconds <= 0:
        raise ValueError("a hold needs a positive time to live")
    now = time.time() if now is None else now
    limited = [w for w in windows if (w.limit_micros, w.limit_input, w.limit_output)
               != (None, None, None)]
    need = (amount_micros, input_tokens, output_tokens)
    with write_tx(db):
        refusal: QuotaExceeded | None = None
        if limited:
            if plan is None:
                raise ValueError("a window hold names its plan")
            hold_id = new_id(QUOTA_HOLD_PREFIX)
            tail, params = _guard(limited, account_id, need)
            try:
                cur = db.execute_sql(_INSERT + tail, (hold_id, account_id, plan, request_id,
                                                      amount_micros, input_tokens, output_tokens,
                                                      now, now + ttl_seconds, *params))
            except pw.IntegrityError as exc:
                if "request_id" in str(exc):
                    raise DuplicateRequest(request_id) from None
                raise AccountNotFound(account_id) from None
            if cur.rowcount == 1:
                _post(db, account_id, "hold", hold_id, request_id, now)
                _bump(db, account_id, now, *need)
                _budgets.post_holds(db, hold_id, budgets, amount_micros, now)
                pos = _position(db, account_id, windows) if position else None
                return Admitted(hold_id, "window", amount_micros, pos)
            refusal = _explain(db, account_id, limited, need)
            if not fallthrough:
                raise refusal
        try:
            hold, balance, held = post_reserve(db, account_id, request_id, amount_micros,
                                               ttl_seconds, now)
        except InsufficientFunds as exc:
            exc.quota = refusal
            raise
        _budgets.post_holds(db, hold.id, budgets, amount_micros, now)
        pos = _position(db, account_id, windows, wallet=(balance, held)) if position else None
        return Admitted(hold.id, "wallet", amount_micros, pos)


# ---------------------------------------------------------------- endings

def _close_quota(db, hold_id: str, state: str, kind: str, cost: int, tin: int, tout: int,
                 estimated: bool, log: dict | None, now: float) -> tuple[SettleResult, str]:
    row = db.execute_sql(_CLOSE, (state, now, cost, cost, cost, cost, tin, tout, hold_id)).fetchone()
    if row is None:
        found = db.execute_sql(_CLOSED, (hold_id,)).fetchone()
        if found is None:
            raise HoldNotFound(hold_id)
        account_id, charged, overrun = found
        return SettleResult(charged, overrun, 0, already_closed=True), account_id
    account_id, request_id, created, amount, held_in, held_out, charged, overrun = row
    _post(db, account_id, kind, hold_id, request_id, now, charged, tin, tout, estimated)
    _bump(db, account_id, created, charged - amount, tin - held_in, tout - held_out)
    if log is not None:
        log.setdefault("request_id", request_id)
        log.setdefault("created_at", now)
        log.setdefault("cost_micros", charged)
        log.setdefault("estimated", estimated)
        write_log(db, log, replace=True)
    return SettleResult(charged, overrun, 0, already_closed=False), account_id


def close(db, hold_id: str, *, cost_micros: int | None, input_tokens: int = 0,
          output_tokens: int = 0, estimated: bool = False, log: dict | None = None,
          account_id: str | None = None, windows: Sequence[Any] = (),
          now: float | None = None) -> Closed:
    """End a request's hold, whichever kind: settle for `cost_micros` (and the token
    usage, for window holds), or void when it is None. Exactly once: ending a hold
    that already ended changes nothing and does not write `log`. With `account_id`,
    the account's position after the ending is read in the same transaction."""
    settling = cost_micros is not None
    if settling:
        check_micros(cost_micros, "cost", minimum=0)
    log = None if log is None else check_log_fields(log)
    now = time.time() if now is None else now
    state, kind = ("settled", "settle") if settling else ("voided", "void")
    cost = cost_micros or 0
    tin, tout = (max(input_tokens, 0), max(output_tokens, 0)) if settling else (0, 0)
    with write_tx(db):
        wallet = None
        alerts: list = []
        if is_quota_hold(hold_id):
            result, _ = _close_quota(db, hold_id, state, kind, cost, tin, tout,
                                     estimated and settling, log, now)
            funded_by = "window"
        else:
            result, held = post_close(db, hold_id, state, kind, cost, estimated and settling,
                                      log, now)
            funded_by = "wallet"
            if held is not None:
                wallet = (result.balance_after, held)
        if not result.already_closed:
            alerts = _budgets.post_close(db, hold_id, result.charged_micros if settling
                                         else None, now)
        pos = _position(db, account_id, windows, wallet=wallet) if account_id else None
    return Closed(result, funded_by, pos, tuple(alerts))


def _expire(db, now: float, cutoff: float) -> int:
    with write_tx(db):
        rows = db.execute_sql(_EXPIRE, (now, cutoff)).fetchall()
        for hold_id, account_id, request_id, created, amount, tin, tout in sorted(rows):
            _post(db, account_id, "expire", hold_id, request_id, now)
            _bump(db, account_id, created, -amount, -tin, -tout)
        _budgets.release(db, [r[0] for r in rows], now)
    return len(rows)


def expire_quota_holds(db, now: float) -> int:
    """The sweeper: end every open window hold whose expires_at <= now, charging nothing."""
    return _expire(db, now, now)


def expire_all_open_quota(db, *, now: float | None = None) -> int:
    """Start-up: every open window hold belongs to a process that is gone."""
    now = time.time() if now is None else now
    return _expire(db, now, float("inf"))


_HOLD_COLUMNS = ("id", "account_id", "plan", "request_id", "amount_micros", "input_tokens",
                 "output_tokens", "state", "charged_micros", "overrun_micros",
                 "used_input_tokens", "used_output_tokens", "created_at", "expires_at",
                 "closed_at")


def quota_holds(db, account_id: str | None = None, *, state: str | None = None) -> list[dict]:
    sql = f"SELECT {', '.join(_HOLD_COLUMNS)} FROM quota_hold WHERE 1 = 1"
    params: list = []
    if account_id is not None:
        sql += " AND account_id = ?"
        params.append(account_id)
    if state is not None:
        sql += " AND state = ?"
        params.append(state)
    with read_tx(db):
        rows = db.execute_sql(sql + " ORDER BY created_at, id", params).fetchall()
    return [dict(zip(_HOLD_COLUMNS, r)) for r in rows]
