"""Wallet money: top-ups, adjustments, holds and how they end, and the books' audit.

Every function here that moves money is one BEGIN IMMEDIATE transaction that
updates the Wallet row's cached balance/held and appends the ledger row together:

    balance   = sum of the wallet's ledger rows (only topup, settle, adjust are non-zero)
    held      = sum of amount_micros over the wallet's open holds
    available = balance - held, never below zero

Admission and every other guard is the WHERE clause of a single UPDATE whose row
count (via RETURNING) decides, never a read followed by a write. The statements are
written out as SQL because this is the per-request path and peewee's builder costs
roughly twenty times what SQLite does to run them; the models in store.models own
the schema these statements assume.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import peewee as pw

from store.db import (AccountNotFound, DuplicateRequest, HoldNotFound,
                      InsufficientFunds, WouldGoNegative, read_tx, write_tx)
from store.logs import check_log_fields, write_log
from store.models import Hold, LedgerEntry, Wallet, new_id

_CREDIT = """UPDATE wallet SET balance_micros = balance_micros + ?, updated_at = ?
 WHERE account_id = ? RETURNING id, balance_micros"""
_ADJUST = """UPDATE wallet SET balance_micros = balance_micros + ?, updated_at = ?
 WHERE account_id = ? AND balance_micros + ? - held_micros >= 0
 RETURNING id, balance_micros"""
_ADMIT = """UPDATE wallet SET held_micros = held_micros + ?, updated_at = ?
 WHERE account_id = ? AND balance_micros - held_micros >= ?
 RETURNING id, balance_micros, held_micros"""
_WALLET = "SELECT balance_micros, held_micros FROM wallet WHERE account_id = ?"
_INSERT_HOLD = """INSERT INTO hold (id, wallet_id, request_id, amount_micros, state,
 charged_micros, overrun_micros, created_at, expires_at, closed_at)
 VALUES (?, ?, ?, ?, 'open', 0, 0, ?, ?, NULL)"""
# The state guard is what makes a hold end exactly once; the charge is capped at
# the hold and the excess recorded as overrun, so a settlement cannot overdraw.
_CLOSE = """UPDATE hold SET state = ?, closed_at = ?,
 charged_micros = CASE WHEN amount_micros < ? THEN amount_micros ELSE ? END,
 overrun_micros = CASE WHEN ? > amount_micros THEN ? - amount_micros ELSE 0 END
 WHERE id = ? AND state = 'open'
 RETURNING wallet_id, request_id, amount_micros, charged_micros, overrun_micros"""
_CLOSED = """SELECT h.charged_micros, h.overrun_micros, w.balance_micros
 FROM hold h JOIN wallet w ON w.id = h.wallet_id WHERE h.id = ?"""
_RELEASE = """UPDATE wallet SET held_micros = held_micros - ?,
 balance_micros = balance_micros - ?, updated_at = ? WHERE id = ?
 RETURNING balance_micros, held_micros"""
_EXPIRE = """UPDATE hold SET state = 'expired', closed_at = ?
 WHERE state = 'open' AND expires_at <= ?
 RETURNING id, wallet_id, request_id, amount_micros"""
_POST = """INSERT INTO ledger_entry (wallet_id, kind, amount_micros, hold_id,
 request_id, reason, estimated, created_at, balance_after)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""


@dataclass(frozen=True)
class SettleResult:
    """How a hold ended. For a hold that had already ended, the figures are the ones
    recorded then (charged is 0 for a voided or expired hold) and balance_after is the
    wallet's balance now."""
    charged_micros: int
    overrun_micros: int
    balance_after: int
    already_closed: bool


def check_micros(value: int, what: str, *, minimum: int | None) -> int:
    """`value` if it is an integer amount of micro-USD no smaller than `minimum`;
    floats are refused outright, since money never passes through them here."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be integer micro-USD, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


def _one(db, sql: str, params: tuple) -> tuple | None:
    rows = db.execute_sql(sql, params).fetchall()
    return rows[0] if rows else None


def _post(db, wallet_id: int, kind: str, amount: int, balance_after: int, now: float,
          *, hold_id: str | None = None, request_id: str | None = None,
          reason: str | None = None, estimated: bool = False) -> None:
    db.execute_sql(_POST, (wallet_id, kind, amount, hold_id, request_id, reason,
                           int(estimated), now, balance_after))


def _guarded(db, sql: str, params: tuple, account_id: str,
             refusal: Callable[[int, int], Exception]) -> tuple:
    """Run a guarded wallet UPDATE ... RETURNING; when its guard refuses, raise
    refusal(balance, held) with the figures the guard saw (still inside the same
    IMMEDIATE transaction, so nothing can have changed them)."""
    row = _one(db, sql, params)
    if row is not None:
        return row
    found = _one(db, _WALLET, (account_id,))
    if found is None:
        raise AccountNotFound(account_id)
    raise refusal(*found)


def post_topup(db, account_id: str, amount_micros: int, reason: str | None,
               now: float) -> int:
    """The body of `top_up`, for callers already inside a write transaction."""
    row = _one(db, _CREDIT, (amount_micros, now, account_id))
    if row is None:
        raise AccountNotFound(account_id)
    wallet_id, balance = row
    _post(db, wallet_id, "topup", amount_micros, balance, now, reason=reason)
    return balance


def top_up(db, account_id: str, amount_micros: int, reason: str | None = None, *,
           now: float | None = None) -> int:
    """Add credit; returns the new balance."""
    check_micros(amount_micros, "top-up", minimum=1)
    with write_tx(db):
        return post_topup(db, account_id, amount_micros, reason,
                          time.time() if now is None else now)


def adjust(db, account_id: str, amount_micros: int, reason: str | None = None, *,
           now: float | None = None) -> int:
    """A signed correction; returns the new balance. Raises WouldGoNegative when the
    result would leave *available* (balance minus open holds) below zero."""
    if check_micros(amount_micros, "adjustment", minimum=None) == 0:
        raise ValueError("an adjustment of zero records nothing")
    now = time.time() if now is None else now
    with write_tx(db):
        wallet_id, balance = _guarded(
            db, _ADJUST, (amount_micros, now, account_id, amount_micros), account_id,
            lambda balance, held: WouldGoNegative(balance, held, amount_micros))
        _post(db, wallet_id, "adjust", amount_micros, balance, now, reason=reason)
    return balance


def reserve(db, account_id: str, request_id: str, amount_micros: int,
            ttl_seconds: float, *, now: float | None = None) -> Hold:
    """Hold money for a request, or raise InsufficientFunds / AccountNotFound /
    DuplicateRequest. The hold expires `ttl_seconds` from now if nobody ends it."""
    check_micros(amount_micros, "hold", minimum=0)
    if ttl_seconds <= 0:
        raise ValueError("a hold needs a positive time to live")
    now = time.time() if now is None else now
    with write_tx(db):
        return post_reserve(db, account_id, request_id, amount_micros, ttl_seconds, now)[0]


def post_reserve(db, account_id: str, request_id: str, amount_micros: int,
                 ttl_seconds: float, now: float) -> tuple[Hold, int, int]:
    """The body of `reserve`, for callers already inside a write transaction (plan
    admission tries the quota window first in the same transaction): the hold and
    the wallet's balance and held after it."""
    wallet_id, balance, held = _guarded(
        db, _ADMIT, (amount_micros, now, account_id, amount_micros), account_id,
        lambda balance, held: InsufficientFunds(balance - held, amount_micros))
    hold = Hold(id=new_id("hold_"), wallet=wallet_id, request_id=request_id,
                amount_micros=amount_micros, state="open", charged_micros=0,
                overrun_micros=0, created_at=now, expires_at=now + ttl_seconds,
                closed_at=None)
    try:
        db.execute_sql(_INSERT_HOLD, (hold.id, wallet_id, request_id, amount_micros,
                                      now, hold.expires_at))
    except pw.IntegrityError:
        # Raising rolls the admission back with it.
        raise DuplicateRequest(request_id) from None
    _post(db, wallet_id, "hold", 0, balance, now, hold_id=hold.id,
          request_id=request_id)
    return hold, balance, held


def _close(db, hold_id: str, state: str, kind: str, cost: int, estimated: bool,
           log: dict | None, now: float | None) -> SettleResult:
    log = None if log is None else check_log_fields(log)
    now = time.time() if now is None else now
    with write_tx(db):
        return post_close(db, hold_id, state, kind, cost, estimated, log, now)[0]


def post_close(db, hold_id: str, state: str, kind: str, cost: int, estimated: bool,
               log: dict | None, now: float) -> tuple[SettleResult, int | None]:
    """The body of settle/void inside the caller's write transaction; `log` must
    already have passed check_log_fields. Returns the result and the wallet's held
    amount after it (None when the hold had already ended)."""
    row = _one(db, _CLOSE, (state, now, cost, cost, cost, cost, hold_id))
    if row is None:
        found = _one(db, _CLOSED, (hold_id,))
        if found is None:
            raise HoldNotFound(hold_id)
        return SettleResult(*found, already_closed=True), None
    wallet_id, request_id, amount, charged, overrun = row
    balance, held = _one(db, _RELEASE, (amount, charged, now, wallet_id))
    _post(db, wallet_id, kind, -charged, balance, now, hold_id=hold_id,
          request_id=request_id, estimated=estimated)
    if log is not None:
        log.setdefault("request_id", request_id)
        log.setdefault("created_at", now)
        log.setdefault("cost_micros", charged)
        log.setdefault("estimated", estimated)
        write_log(db, log, replace=True)
    return SettleResult(charged, overrun, balance, already_closed=False), held


def settle(db, hold_id: str, cost_micros: int, *, estimated: bool = False,
           log: dict | None = None, now: float | None = None) -> SettleResult:
    """End an open hold by charging min(cost, hold); the rest of the cost is recorded
    as overrun. A hold that already ended is left exactly as it is
    (already_closed=True, and `log` is not written), so retrying a settlement can
    never charge twice.

    `log`, if given, is the request's RequestLog row (column names as keys; request_id,
    created_at, cost_micros=charged and estimated default from the settlement) and is
    written in the same transaction."""
    check_micros(cost_micros, "cost", minimum=0)
    return _close(db, hold_id, "settled", "settle", cost_micros, estimated, log, now)


def void(db, hold_id: str, *, log: dict | None = None,
         now: float | None = None) -> SettleResult:
    """End an open hold without charging (the request failed before costing anything);
    same exactly-once guard and optional log as `settle`."""
    return _close(db, hold_id, "voided", "void", 0, False, log, now)


def _expire(db, now: float, cutoff: float) -> int:
    with write_tx(db):
        rows = db.execute_sql(_EXPIRE, (now, cutoff)).fetchall()
        released: dict[int, int] = {}
        for _, wallet_id, _, amount in rows:
            released[wallet_id] = released.get(wallet_id, 0) + amount
        balances = {wallet_id: _one(db, _RELEASE, (held, 0, now, wallet_id))[0]
                    for wallet_id, held in released.items()}
        for hold_id, wallet_id, request_id, _ in sorted(rows):
            _post(db, wallet_id, "expire", 0, balances[wallet_id], now,
                  hold_id=hold_id, request_id=request_id)
        from store.budgets import release   # its holds' budget charges end with them
        release(db, [r[0] for r in rows], now)
    return len(rows)


def expire_holds(db, now: float) -> int:
    """The sweeper: end every open hold whose expires_at <= now, charging nothing.
    Returns how many it ended."""
    return _expire(db, now, now)


def expire_all_open(db, *, now: float | None = None) -> int:
    """Start-up: every open hold belongs to a process that is gone, so end them all."""
    now = time.time() if now is None else now
    return _expire(db, now, float("inf"))


def get_wallet(db, account_id: str) -> Wallet:
    with read_tx(db):
        wallet = Wallet.select().where(Wallet.account == account_id).first(db)
    if wallet is None:
        raise AccountNotFound(account_id)
    return wallet


def ledger_rows(db, account_id: str) -> list[LedgerEntry]:
    """The account's ledger, oldest first (empty for an unknown account)."""
    query = (LedgerEntry.select().join(Wallet)
             .where(Wallet.account == account_id).order_by(LedgerEntry.id))
    with read_tx(db):
        return list(query.execute(db))


def open_holds(db, account_id: str | None = None) -> list[Hold]:
    query = Hold.select().where(Hold.state == "open").order_by(Hold.created_at, Hold.id)
    if account_id is not None:
        query = query.join(Wallet).where(Wallet.account == account_id)
    with read_tx(db):
        return list(query.execute(db))


def hold_for_request(db, request_id: str) -> Hold | None:
    """The hold made for a request, whatever its state; lets a caller whose reserve
    was cancelled in flight find and void what it may have left behind."""
    with read_tx(db):
        return Hold.select().where(Hold.request_id == request_id).first(db)


_WALLET_AUDIT = """SELECT w.account_id, w.balance_micros, w.held_micros,
 (SELECT COALESCE(SUM(e.amount_micros), 0) FROM ledger_entry e WHERE e.wallet_id = w.id),
 (SELECT COALESCE(SUM(h.amount_micros), 0) FROM hold h
   WHERE h.wallet_id = w.id AND h.state = 'open')
 FROM wallet w ORDER BY w.id"""
_HOLD_AUDIT = """SELECT h.id, h.state, h.amount_micros, h.charged_micros,
 h.overrun_micros, h.closed_at IS NULL,
 COALESCE(SUM(CASE WHEN e.kind = 'hold' THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN e.kind IN ('settle', 'void', 'expire') THEN 1 ELSE 0 END), 0),
 MAX(CASE WHEN e.kind IN ('settle', 'void', 'expire') THEN e.kind END),
 COALESCE(SUM(CASE WHEN e.kind = 'settle' THEN e.amount_micros ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN e.wallet_id != h.wallet_id THEN 1 ELSE 0 END), 0)
 FROM hold h LEFT JOIN ledger_entry e ON e.hold_id = h.id
 GROUP BY h.id ORDER BY h.id"""
_ROW_AUDIT = """SELECT id, kind, amount_micros FROM ledger_entry
 WHERE (kind IN ('hold', 'void', 'expire') AND amount_micros != 0)
    OR (kind = 'topup' AND amount_micros <= 0)
    OR (kind = 'settle' AND amount_micros > 0)
    OR (kind IN ('hold', 'settle', 'void', 'expire')) = (hold_id IS NULL)
 ORDER BY id"""
_CHAIN_AUDIT = """SELECT id, balance_after, running FROM (
 SELECT id, balance_after,
  SUM(amount_micros) OVER (PARTITION BY wallet_id ORDER BY id) AS running
 FROM ledger_entry) AS chain WHERE balance_after != running ORDER BY id"""
_ORPHAN_AUDIT = """SELECT a.id FROM account a LEFT JOIN wallet w ON w.account_id = a.id
 WHERE w.id IS NULL ORDER BY a.id"""
_TERMINAL_KIND = {"settled": "settle", "voided": "void", "expired": "expire"}


def check_invariants(db) -> list[str]:
    """Every way the books disagree with the money rules, as readable lines; empty
    when all is well. Reads one snapshot, so it is safe beside a running writer."""
    problems: list[str] = []
    with read_tx(db):
        for account, balance, held, posted, open_sum in db.execute_sql(_WALLET_AUDIT):
            where = f"wallet of {account}"
            if balance != posted:
                problems.append(f"{where}: balance {balance} != sum of ledger {posted}")
            if held != open_sum:
                problems.append(f"{where}: held {held} != sum of open holds {open_sum}")
            if balance < 0 or held < 0 or balance - held < 0:
                problems.append(f"{where}: balance {balance}, held {held} goes negative")
        for (hold, state, amount, charged, overrun, unclosed, opened, ended, end_kind,
             settled_sum, foreign) in db.execute_sql(_HOLD_AUDIT):
            where = f"hold {hold} ({state})"
            if opened != 1:
                problems.append(f"{where}: {opened} 'hold' ledger rows, expected 1")
            expected_end = _TERMINAL_KIND.get(state)
            if ended != (0 if expected_end is None else 1) or end_kind != expected_end:
                problems.append(f"{where}: {ended} terminal ledger rows ({end_kind})")
            if unclosed != (state == "open"):
                problems.append(f"{where}: closed_at does not match its state")
            if charged > amount or (overrun and charged != amount):
                problems.append(f"{where}: charged {charged}, overrun {overrun} "
                                f"against a hold of {amount}")
            if state != "settled" and (charged or overrun):
                problems.append(f"{where}: charged {charged} without settling")
            if settled_sum != -charged:
                problems.append(f"{where}: settle rows total {settled_sum}, "
                                f"charged {charged}")
            if foreign:
                problems.append(f"{where}: ledger rows on another wallet")
        for entry, kind, amount in db.execute_sql(_ROW_AUDIT):
            problems.append(f"ledger row {entry}: {kind} of {amount} is malformed")
        for entry, after, running in db.execute_sql(_CHAIN_AUDIT):
            problems.append(f"ledger row {entry}: balance_after {after} != running "
                            f"sum {running}")
        for (account,) in db.execute_sql(_ORPHAN_AUDIT):
            problems.append(f"account {account} has no wallet")
        # Window holds keep books of their own (store.quota); same snapshot.
        from store.quota_audit import quota_problems
        problems.extend(quota_problems(db))
        from store.budgets import budget_problems
        problems.extend(budget_problems(db))
    return problems
