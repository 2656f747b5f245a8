"""Monthly budgets (an org's, a key's) held and charged inside the hold's own transaction.

store.quota.admit calls `post_holds` after it has made the request's hold (window or
wallet) and before its transaction commits: each budget is one guarded UPDATE whose
WHERE is `spent + held + amount <= limit`, and a refusal raises BudgetExceeded, which
rolls the whole admission back (window, wallet and every other budget): all or
nothing, never a read followed by a write. A soft budget is tracked the same way but
never refuses. `post_close` ends a hold's charges in the transaction that ends the
hold, moving its amount from held to what it was charged, and reports the alert
thresholds (percent of the limit) the org's spend crossed for the first time that
month; `release` does the same for expired holds.

    budget_usage.held  = sum of its open charges' amount
    budget_usage.spent = sum of its settled charges' charged
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

ALERT_THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True)
class Budget:
    """One budget a request counts against. `hard`: refuse past `limit_micros`."""
    scope: str            # 'org' | 'key'
    owner: str
    limit_micros: int
    hard: bool = True


@dataclass(frozen=True)
class Alert:
    scope: str
    owner: str
    period: str
    threshold: int        # percent now reached (capped at 100)
    spent_micros: int
    limit_micros: int
    from_percent: int = 0  # percent reached before: the org's thresholds in
                           # (from_percent, threshold] are crossed (gateway.orgs)


class BudgetExceeded(Exception):
    def __init__(self, budget: Budget, spent: int, held: int, needed: int) -> None:
        super().__init__(f"{budget.scope} budget of {budget.owner}: limit "
                         f"{budget.limit_micros}, spent {spent}, held {held}, needed {needed}")
        self.budget = budget
        self.spent_micros = spent
        self.held_micros = held
        self.needed_micros = needed


def period_of(now: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now))


_ENSURE = """INSERT INTO budget_usage (scope, owner, period, spent_micros, held_micros,
 limit_micros, alerted) VALUES (?, ?, ?, 0, 0, ?, 0) ON CONFLICT DO NOTHING"""
_HOLD_HARD = """UPDATE budget_usage SET held_micros = held_micros + ?, limit_micros = ?
 WHERE scope = ? AND owner = ? AND period = ? AND spent_micros + held_micros + ? <= ?
 RETURNING held_micros"""
_HOLD_SOFT = """UPDATE budget_usage SET held_micros = held_micros + ?, limit_micros = ?
 WHERE scope = ? AND owner = ? AND period = ? RETURNING held_micros"""
_USAGE = """SELECT spent_micros, held_micros FROM budget_usage
 WHERE scope = ? AND owner = ? AND period = ?"""
_CHARGE = """INSERT INTO budget_charge (hold_id, scope, owner, period, amount_micros,
 charged_micros, state, created_at, closed_at) VALUES (?, ?, ?, ?, ?, 0, 'open', ?, NULL)"""
_END = """UPDATE budget_charge SET state = ?, closed_at = ?,
 charged_micros = CASE WHEN ? < amount_micros THEN ? ELSE amount_micros END
 WHERE hold_id = ? AND state = 'open'
 RETURNING scope, owner, period, amount_micros, charged_micros"""
_MOVE = """UPDATE budget_usage SET held_micros = held_micros - ?,
 spent_micros = spent_micros + ? WHERE scope = ? AND owner = ? AND period = ?
 RETURNING spent_micros, limit_micros, alerted"""
_ALERTED = """UPDATE budget_usage SET alerted = ? WHERE scope = ? AND owner = ?
 AND period = ? AND alerted < ? RETURNING alerted"""


def post_holds(db, hold_id: str, budgets: Sequence[Budget], amount: int, now: float) -> None:
    """Count a new hold against each budget, inside the admission's transaction.
    Raises BudgetExceeded (rolling the admission back) when a hard budget refuses."""
    period = period_of(now)
    for b in budgets:
        db.execute_sql(_ENSURE, (b.scope, b.owner, period, b.limit_micros))
        if b.hard:
            row = db.execute_sql(_HOLD_HARD, (amount, b.limit_micros, b.scope, b.owner, period,
                                              amount, b.limit_micros)).fetchone()
            if row is None:
                spent, held = db.execute_sql(_USAGE, (b.scope, b.owner, period)).fetchone()
                raise BudgetExceeded(b, spent, held, amount)
        else:
            db.execute_sql(_HOLD_SOFT, (amount, b.limit_micros, b.scope, b.owner, period))
        db.execute_sql(_CHARGE, (hold_id, b.scope, b.owner, period, amount, now))


def _end(db, hold_id: str, state: str, charged: int, now: float) -> list[Alert]:
    alerts: list[Alert] = []
    for scope, owner, period, amount, took in db.execute_sql(
            _END, (state, now, charged, charged, hold_id)).fetchall():
        spent, limit, alerted = db.execute_sql(_MOVE, (amount, took, scope, owner,
                                                       period)).fetchone()
        if scope != "org" or not limit or took == 0:
            continue
        # The percent reached, not fixed thresholds: each org picks its own
        # (gateway.orgs.settings), and the guarded write hands each percent range out
        # exactly once.
        pct = min(spent * 100 // limit, 100)
        if pct > alerted and db.execute_sql(_ALERTED, (pct, scope, owner, period,
                                                       pct)).fetchone():
            alerts.append(Alert(scope, owner, period, pct, spent, limit, alerted))
    return alerts


def post_close(db, hold_id: str, charged: int | None, now: float) -> list[Alert]:
    """End a hold's charges with it: settled for `charged` (None: voided). Returns the
    org alert thresholds crossed for the first time this month (each exactly once:
    the `alerted < threshold` guard is the same kind of write as admission's)."""
    if charged is None:
        return _end(db, hold_id, "voided", 0, now)
    return _end(db, hold_id, "settled", charged, now)


def release(db, hold_ids: Sequence[str], now: float) -> None:
    """Expired holds: their charges end charging nothing (same transaction)."""
    for hold_id in hold_ids:
        _end(db, hold_id, "expired", 0, now)


def usage(db, scope: str, owner: str, now: float) -> tuple[int, int]:
    """(spent, held) of a budget this month."""
    row = db.execute_sql(_USAGE, (scope, owner, period_of(now))).fetchone()
    return (0, 0) if row is None else (row[0], row[1])


def key_budgets(db, account_id: str, now: float) -> list[dict]:
    """Each unrevoked key of the account that has a budget: limit, spent and held this
    month (what /v1/balance shows its owner)."""
    from store.lazy_tx import read_tx
    with read_tx(db):
        rows = db.execute_sql(
            "SELECT k.id, k.name, k.budget_micros, COALESCE(u.spent_micros, 0), "
            "COALESCE(u.held_micros, 0) FROM api_key k LEFT JOIN budget_usage u "
            "ON u.scope = 'key' AND u.owner = k.id AND u.period = ? "
            "WHERE k.account_id = ? AND k.budget_micros IS NOT NULL AND k.revoked_at IS NULL "
            "ORDER BY k.created_at, k.id", (period_of(now), account_id)).fetchall()
    return [{"key_id": k, "name": n, "period": period_of(now), "limit_micros": lim,
             "spent_micros": sp, "held_micros": h,
             "remaining_micros": max(lim - sp - h, 0)} for k, n, lim, sp, h in rows]


_BUDGET_AUDIT = """SELECT u.scope, u.owner, u.period, u.spent_micros, u.held_micros,
 (SELECT COALESCE(SUM(c.charged_micros), 0) FROM budget_charge c WHERE c.scope = u.scope
   AND c.owner = u.owner AND c.period = u.period AND c.state = 'settled'),
 (SELECT COALESCE(SUM(c.amount_micros), 0) FROM budget_charge c WHERE c.scope = u.scope
   AND c.owner = u.owner AND c.period = u.period AND c.state = 'open')
 FROM budget_usage u ORDER BY u.scope, u.owner, u.period"""
_CHARGE_AUDIT = """SELECT c.hold_id, c.scope, c.state, c.charged_micros,
 COALESCE(h.state, q.state), COALESCE(h.charged_micros, q.charged_micros)
 FROM budget_charge c LEFT JOIN hold h ON h.id = c.hold_id
 LEFT JOIN quota_hold q ON q.id = c.hold_id ORDER BY c.hold_id, c.scope"""


def budget_problems(db) -> list[str]:
    """The budgets' books against their charges and the charges against their holds
    (inside the caller's read transaction)."""
    problems: list[str] = []
    for scope, owner, period, spent, held, settled, open_sum in db.execute_sql(_BUDGET_AUDIT):
        where = f"{scope} budget {owner} {period}"
        if spent != settled:
            problems.append(f"{where}: spent {spent} != settled charges {settled}")
        if held != open_sum:
            problems.append(f"{where}: held {held} != open charges {open_sum}")
    for hold_id, scope, state, charged, hold_state, hold_charged in db.execute_sql(_CHARGE_AUDIT):
        where = f"{scope} charge of {hold_id}"
        if hold_state is None:
            problems.append(f"{where}: no such hold")
        elif state != hold_state:
            problems.append(f"{where}: {state} but its hold is {hold_state}")
        elif charged != hold_charged:
            problems.append(f"{where}: charged {charged}, its hold {hold_charged}")
    return problems
