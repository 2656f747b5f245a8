"""Plan quota windows: admission, settlement and expiry of window holds, and the
account's position (wallet and windows) that responses report.

A window's usage is the sum, over the account's quota_hold rows created inside it, of
each hold's current value: its worst case while open, what it charged and used once
settled, nothing once voided or expired (gateway.billing.windows has the boundaries).
So that this sum does not grow with history, every change to a hold's value also
updates two pre-summed buckets (quota_usage: the minute and the hour the hold was
created in), and a window is summed exactly from three bounded parts:

    hold rows   created in the window before the first whole minute    (<= 60 s of rows)
    minute buckets from there to the first whole hour                   (<= 59)
    hour buckets from there on                                         (<= 168 for 7d)

Admission is one `INSERT ... SELECT ... WHERE usage + request <= limit` over every
limited dimension of every window, run inside BEGIN IMMEDIATE, so no interleaving of
writers can admit past a limit; the same transaction falls through to the wallet
(store.ledger) when the plan allows it. Holds end exactly once through the same state
guard as wallet holds, and every hold and ending appends a quota_entry row (the
windows' books).

`windows` arguments are gateway.billing.windows.WindowSpec values, or anything with
their attributes (name, start, inclusive, length, end, limit_micros, limit_input,
limit_output); the store stays free of gateway imports.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import peewee as pw

from store.db import (AccountNotFound, DuplicateRequest, HoldNotFound, InsufficientFunds,
                      StoreError, read_tx, write_tx)
from store.ledger import SettleResult, check_micros, post_close, post_reserve
from store.logs import check_log_fields, write_log
from store.models import new_id

QUOTA_HOLD_PREFIX = "qhold_"
DIMENSIONS = ("usd", "input_tokens", "output_tokens")
MINUTE, HOUR = 60, 3600
# Buckets older than the longest window (7 days) plus an hour are never read again.
BUCKET_HORIZON = 7 * 86400 + 2 * HOUR

# What a hold counts for, by state (voided and expired are filtered out by the WHERE).
_VALUE = ("CASE state WHEN 'open' THEN amount_micros ELSE charged_micros END, "
          "CASE state WHEN 'open' THEN input_tokens ELSE used_input_tokens END, "
          "CASE state WHEN 'open' THEN output_tokens ELSE used_output_tokens END")
_VALUE_AS = ("CASE state WHEN 'open' THEN amount_micros ELSE charged_micros END AS u, "
             "CASE state WHEN 'open' THEN input_tokens ELSE used_input_tokens END AS i, "
             "CASE state WHEN 'open' THEN output_tokens ELSE used_output_tokens END AS o")
_LIVE = "account_id = ? AND state IN ('open', 'settled')"
_INSERT = """INSERT INTO quota_hold (id, account_id, plan, request_id, amount_micros,
 input_tokens, output_tokens, state, charged_micros, overrun_micros, used_input_tokens,
 used_output_tokens, created_at, expires_at, closed_at)
 SELECT ?, ?, ?, ?, ?, ?, ?, 'open', 0, 0, 0, 0, ?, ?, NULL"""
_BUMP = """INSERT INTO quota_usage (account_id, grain, start, usd, input_tokens, output_tokens)
 VALUES (?, 60, ?, ?, ?, ?), (?, 3600, ?, ?, ?, ?)
 ON CONFLICT (account_id, grain, start) DO UPDATE SET usd = usd + excluded.usd,
 input_tokens = input_tokens + excluded.input_tokens,
 output_tokens = output_tokens + excluded.output_tokens"""
_CLOSE = """UPDATE quota_hold SET state = ?, closed_at = ?,
 charged_micros = MIN(amount_micros, ?), overrun_micros = MAX(? - amount_micros, 0),
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
_WALLET = "SELECT balance_micros, held_micros FROM wallet WHERE account_id = ?"


class QuotaExceeded(StoreError):
    """A plan window cannot cover a request (and the plan does not fall through, or
    the wallet could not either; then InsufficientFunds carries this as .quota)."""

    def __init__(self, window: str, dimension: str, used: int, limit: int, needed: int,
                 resets_at: float | None) -> None:
        super().__init__(f"window {window}: {dimension} used {used} of {limit}, "
                         f"needs {needed}")
        self.window, self.dimension = window, dimension
        self.used, self.limit, self.needed = used, limit, needed
        self.resets_at = resets_at


@dataclass(frozen=True)
class WindowUsage:
    name: str
    used_micros: int
    used_input: int
    used_output: int
    limit_micros: int | None
    limit_input: int | None
    limit_output: int | None
    # daily: the period's end; rolling: when the oldest hold still counting stops
    # counting (None if nothing counts, or when not asked for)
    resets_at: float | None

    def remaining(self, dimension: str = "usd") -> int | None:
        i = DIMENSIONS.index(dimension)
        limit = (self.limit_micros, self.limit_input, self.limit_output)[i]
        used = (self.used_micros, self.used_input, self.used_output)[i]
        return None if limit is None else max(limit - used, 0)


@dataclass(frozen=True)
class Position:
    """Where an account stands: its wallet and each plan window, read in one snapshot."""
    balance_micros: int
    held_micros: int
    windows: tuple[WindowUsage, ...] = ()

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros


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


def is_quota_hold(hold_id: str) -> bool:
    return hold_id.startswith(QUOTA_HOLD_PREFIX)


# ---------------------------------------------------------------- window sums

def _bounds(w: Any) -> tuple[float, int, int]:
    """(window start, first minute boundary, first hour boundary) for the three parts:
    rows in [start, m) (or (start, m)), minute buckets in [m, h), hour buckets from h."""
    s = w.start
    m = int(s) if w.inclusive and s == int(s) and int(s) % MINUTE == 0 else \
        (math.floor(s) // MINUTE + 1) * MINUTE
    h = -(-m // HOUR) * HOUR
    return s, m, h


def _sum_sql(w: Any, account_id: str) -> tuple[str, list]:
    """A one-row (u, i, o) query: the window's usage in micro-USD, input, output."""
    s, m, h = _bounds(w)
    op = ">=" if w.inclusive else ">"
    sql = (f"SELECT COALESCE(SUM(u), 0) AS u, COALESCE(SUM(i), 0) AS i, COALESCE(SUM(o), 0) AS o"
           f" FROM (SELECT {_VALUE_AS}"
           f" FROM quota_hold WHERE {_LIVE} AND created_at {op} ? AND created_at < ?"
           " UNION ALL SELECT usd, input_tokens, output_tokens FROM quota_usage"
           " WHERE account_id = ? AND grain = 60 AND start >= ? AND start < ?"
           " UNION ALL SELECT usd, input_tokens, output_tokens FROM quota_usage"
           " WHERE account_id = ? AND grain = 3600 AND start >= ?)")
    return sql, [account_id, s, m, account_id, m, h, account_id, h]


def _oldest(db, account_id: str, w: Any) -> float | None:
    """When the oldest hold that still counts in rolling window `w` stops counting."""
    if w.end is not None:
        return w.end
    op = ">=" if w.inclusive else ">"
    row = db.execute_sql(
        f"SELECT created_at FROM quota_hold WHERE {_LIVE} AND created_at {op} ? "
        "AND (CASE state WHEN 'open' THEN amount_micros + input_tokens + output_tokens "
        "ELSE charged_micros + used_input_tokens + used_output_tokens END) > 0 "
        "ORDER BY created_at LIMIT 1", (account_id, w.start)).fetchone()
    return None if row is None else row[0] + w.length


def _usage(db, account_id: str, windows: Sequence[Any], *,
           resets: bool = True) -> tuple[WindowUsage, ...]:
    out = []
    for w in windows:
        sql, params = _sum_sql(w, account_id)
        u, i, o = db.execute_sql(sql, params).fetchone()
        out.append(WindowUsage(w.name, u, i, o, w.limit_micros, w.limit_input, w.limit_output,
                               _oldest(db, account_id, w) if resets else None))
    return tuple(out)


def _position(db, account_id: str, windows: Sequence[Any], *, resets: bool = False,
              wallet: tuple[int, int] | None = None) -> Position:
    if wallet is None:
        wallet = db.execute_sql(_WALLET, (account_id,)).fetchone()
        if wallet is None:
            raise AccountNotFound(account_id)
    return Position(wallet[0], wallet[1], _usage(db, account_id, windows, resets=resets))


def account_position(db, account_id: str, windows: Sequence[Any] = ()) -> Position:
    """The wallet and each window's usage (with reset times) as of one read snapshot."""
    with read_tx(db):
        return _position(db, account_id, windows, resets=True)


def _bump(db, account_id: str, created_at: float, du: int, di: int, do: int) -> None:
    """Add a change of one hold's value to the buckets of its creation minute and hour."""
    if du or di or do:
        minute = int(created_at // MINUTE * MINUTE)
        hour = int(created_at // HOUR * HOUR)
        db.execute_sql(_BUMP, (account_id, minute, du, di, do, account_id, hour, du, di, do))


def prune_usage(db, now: float) -> int:
    """Drop buckets no window can reach any more (the sweeper's job)."""
    with write_tx(db):
        return db.execute_sql("DELETE FROM quota_usage WHERE start < ?",
                              (int(now - BUCKET_HORIZON),)).rowcount


# ---------------------------------------------------------------- refusals

def _explain(db, account_id: str, windows: Sequence[Any],
             need: tuple[int, int, int]) -> QuotaExceeded:
    """Why the guard refused: the first window and dimension without room, with the
    time enough of it frees (read inside the refusing transaction)."""
    for w, u in zip(windows, _usage(db, account_id, windows, resets=False)):
        used = (u.used_micros, u.used_input, u.used_output)
        limits = (w.limit_micros, w.limit_input, w.limit_output)
        for d in range(3):
            if limits[d] is not None and used[d] + need[d] > limits[d]:
                return QuotaExceeded(w.name, DIMENSIONS[d], used[d], limits[d], need[d],
                                     _reset_time(db, account_id, w, used, need))
    # Unreachable while the guard and this check agree; fail loudly if they ever don't.
    raise StoreError("quota guard refused but every window has room")


def _rows(db, account_id: str, lo: float, hi: float, inclusive: bool) -> list[tuple]:
    op = ">=" if inclusive else ">"
    return db.execute_sql(f"SELECT created_at, {_VALUE} FROM quota_hold WHERE {_LIVE} "
                          f"AND created_at {op} ? AND created_at < ? ORDER BY created_at",
                          (account_id, lo, hi)).fetchall()


def _reset_time(db, account_id: str, w: Any, used: tuple[int, int, int],
                need: tuple[int, int, int]) -> float | None:
    """The earliest moment `need` fits in window `w` if nothing new is admitted; None
    if it never does (the request alone is over a limit). Walks what counts oldest
    first, buckets whole, then the rows of the bucket that makes room."""
    limits = (w.limit_micros, w.limit_input, w.limit_output)
    if any(lim is not None and n > lim for lim, n in zip(limits, need)):
        return None
    if w.end is not None:
        return w.end
    left = list(used)

    def fits() -> bool:
        return all(lim is None or u + n <= lim for lim, u, n in zip(limits, left, need))

    s, m, h = _bounds(w)
    for created, *values in _rows(db, account_id, s, m, w.inclusive):
        left[:] = [a - b for a, b in zip(left, values)]
        if fits():
            return created + w.length
    buckets = db.execute_sql(
        "SELECT grain, start, usd, input_tokens, output_tokens FROM quota_usage "
        "WHERE account_id = ? AND ((grain = 60 AND start >= ? AND start < ?) "
        "OR (grain = 3600 AND start >= ?)) ORDER BY start", (account_id, m, h, h)).fetchall()
    for grain, start, *values in buckets:
        before = list(left)
        left[:] = [a - b for a, b in zip(left, values)]
        if fits():
            left[:] = before
            for created, *hold in _rows(db, account_id, start, start + grain, True):
                left[:] = [a - b for a, b in zip(left, hold)]
                if fits():
                    return created + w.length
            return start + grain + w.length   # unreachable while buckets match their rows
    return None


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
          position: bool = True) -> Admitted:
    """Hold the worst case of a request: in the plan's windows if they have room,
    else (fallthrough) in the wallet, in one BEGIN IMMEDIATE transaction.

    Raises QuotaExceeded when the windows refuse and the plan does not fall through;
    InsufficientFunds (with `.quota` set to the window refusal, if any) when the wallet
    refuses; AccountNotFound; DuplicateRequest. With `position`, the account's
    position after the hold is read in the same transaction."""
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
        pos = _position(db, account_id, windows, wallet=(balance, held)) if position else None
        return Admitted(hold.id, "wallet", amount_micros, pos)


# ---------------------------------------------------------------- endings

def _close_quota(db, hold_id: str, state: str, kind: str, cost: int, tin: int, tout: int,
                 estimated: bool, log: dict | None, now: float) -> tuple[SettleResult, str]:
    row = db.execute_sql(_CLOSE, (state, now, cost, cost, tin, tout, hold_id)).fetchone()
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
        pos = _position(db, account_id, windows, wallet=wallet) if account_id else None
    return Closed(result, funded_by, pos)


def _expire(db, now: float, cutoff: float) -> int:
    with write_tx(db):
        rows = db.execute_sql(_EXPIRE, (now, cutoff)).fetchall()
        for hold_id, account_id, request_id, created, amount, tin, tout in sorted(rows):
            _post(db, account_id, "expire", hold_id, request_id, now)
            _bump(db, account_id, created, -amount, -tin, -tout)
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
    sql = f"SELECT {', '.join(_HOLD_COLUMNS)} FROM quota_hold WHERE 1"
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


# ---------------------------------------------------------------- audit

_HOLD_AUDIT = """SELECT h.id, h.state, h.amount_micros, h.charged_micros, h.overrun_micros,
 h.used_input_tokens, h.used_output_tokens, h.closed_at IS NULL,
 COALESCE(SUM(e.kind = 'hold'), 0),
 COALESCE(SUM(e.kind IN ('settle', 'void', 'expire')), 0),
 MAX(CASE WHEN e.kind IN ('settle', 'void', 'expire') THEN e.kind END),
 COALESCE(SUM(e.amount_micros), 0), COALESCE(SUM(e.input_tokens), 0),
 COALESCE(SUM(e.output_tokens), 0),
 COALESCE(SUM(e.account_id != h.account_id), 0)
 FROM quota_hold h LEFT JOIN quota_entry e ON e.hold_id = h.id
 GROUP BY h.id ORDER BY h.id"""
_ROW_AUDIT = """SELECT id, kind FROM quota_entry WHERE kind != 'settle'
 AND (amount_micros != 0 OR input_tokens != 0 OR output_tokens != 0) ORDER BY id"""
# Every bucket equals the sum of its holds' current values, and every open hold has
# its buckets (old settled ones may have been pruned).
_BUCKET_AUDIT = f"""WITH v AS (
 SELECT account_id, created_at, state, {_VALUE_AS}
 FROM quota_hold WHERE state IN ('open', 'settled')),
 g AS (SELECT account_id, 60 AS grain, CAST(created_at / 60 AS INTEGER) * 60 AS start,
        SUM(u) AS u, SUM(i) AS i, SUM(o) AS o, SUM(state = 'open') AS open FROM v
       GROUP BY 1, 2, 3
       UNION ALL
       SELECT account_id, 3600, CAST(created_at / 3600 AS INTEGER) * 3600,
        SUM(u), SUM(i), SUM(o), SUM(state = 'open') FROM v GROUP BY 1, 2, 3)
 SELECT b.account_id, b.grain, b.start, b.usd, b.input_tokens, b.output_tokens,
  COALESCE(g.u, 0), COALESCE(g.i, 0), COALESCE(g.o, 0)
 FROM quota_usage b LEFT JOIN g ON g.account_id = b.account_id AND g.grain = b.grain
  AND g.start = b.start
 WHERE (b.usd, b.input_tokens, b.output_tokens) != (COALESCE(g.u, 0), COALESCE(g.i, 0),
  COALESCE(g.o, 0))
 UNION ALL
 SELECT g.account_id, g.grain, g.start, NULL, NULL, NULL, g.u, g.i, g.o FROM g
 LEFT JOIN quota_usage b ON g.account_id = b.account_id AND g.grain = b.grain
  AND g.start = b.start
 WHERE b.start IS NULL AND g.open > 0 AND (g.u, g.i, g.o) != (0, 0, 0)"""
_TERMINAL_KIND = {"settled": "settle", "voided": "void", "expired": "expire"}


def quota_problems(db) -> list[str]:
    """Every way the window books disagree with the money rules; run by
    store.check_invariants inside its read snapshot."""
    problems: list[str] = []
    for (hold, state, amount, charged, overrun, used_in, used_out, unclosed, opened, ended,
         end_kind, posted, posted_in, posted_out, foreign) in db.execute_sql(_HOLD_AUDIT):
        where = f"window hold {hold} ({state})"
        if opened != 1:
            problems.append(f"{where}: {opened} 'hold' rows, expected 1")
        expected_end = _TERMINAL_KIND.get(state)
        if ended != (0 if expected_end is None else 1) or end_kind != expected_end:
            problems.append(f"{where}: {ended} terminal rows ({end_kind})")
        if unclosed != (state == "open"):
            problems.append(f"{where}: closed_at does not match its state")
        if charged > amount or (overrun and charged != amount):
            problems.append(f"{where}: charged {charged}, overrun {overrun} of {amount}")
        if state != "settled" and (charged or overrun or used_in or used_out):
            problems.append(f"{where}: usage recorded without settling")
        if (posted, posted_in, posted_out) != (charged, used_in, used_out):
            problems.append(f"{where}: rows post {posted}/{posted_in}/{posted_out}, hold "
                            f"says {charged}/{used_in}/{used_out}")
        if foreign:
            problems.append(f"{where}: rows on another account")
    for entry, kind in db.execute_sql(_ROW_AUDIT):
        problems.append(f"quota row {entry}: {kind} carries usage")
    for account, grain, start, *figures in db.execute_sql(_BUCKET_AUDIT):
        bucket, holds = figures[:3], figures[3:]
        if bucket[0] is None:
            problems.append(f"usage bucket {account}/{grain}/{start} is missing for open "
                            f"holds worth {holds}")
        else:
            problems.append(f"usage bucket {account}/{grain}/{start} says {bucket}, its "
                            f"holds {holds}")
    return problems
