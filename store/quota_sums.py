"""Plan window usage: exact sums over an account's window holds, kept cheap by buckets.

A window's usage is the sum, over the account's quota_hold rows created inside it, of
each hold's current value: its worst case while open, what it charged and used once
settled, nothing once voided or expired (gateway.billing.windows has the boundaries).
So that this sum does not grow with history, every change to a hold's value also
updates two pre-summed buckets (quota_usage: the minute and the hour the hold was
created in; store.quota calls `_bump` in the transaction that changes the hold), and
a window is summed exactly from three bounded parts:

    hold rows   created in the window before the first whole minute    (<= 60 s of rows)
    minute buckets from there to the first whole hour                   (<= 59)
    hour buckets from there on                                         (<= 168 for 7d)

Also here: the account's Position (wallet and windows) and, for a refusal, which
window ran out and when enough of it frees.

`windows` arguments are gateway.billing.windows.WindowSpec values, or anything with
their attributes (name, start, inclusive, length, end, limit_micros, limit_input,
limit_output); the store stays free of gateway imports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from store.db import AccountNotFound, StoreError, read_tx, write_tx

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
_BUMP = """INSERT INTO quota_usage (account_id, grain, start, usd, input_tokens, output_tokens)
 VALUES (?, 60, ?, ?, ?, ?), (?, 3600, ?, ?, ?, ?)
 ON CONFLICT (account_id, grain, start) DO UPDATE SET usd = quota_usage.usd + excluded.usd,
 input_tokens = quota_usage.input_tokens + excluded.input_tokens,
 output_tokens = quota_usage.output_tokens + excluded.output_tokens"""
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
           " WHERE account_id = ? AND grain = 3600 AND start >= ?) AS parts")
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
