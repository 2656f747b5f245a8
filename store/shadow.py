"""Shadow traffic: one row per shadow call (engine.shadow), and the operator account
shadow calls are charged to.

The rows carry only numbers and names (no prompt, no output): what GET /-/shadow/stats
aggregates per (model, shadow model) pair. The shadow calls' money is in the books like
any other call, on the operator account, so it never touches a customer's wallet and
is shown separately.
"""
from __future__ import annotations

import time
from typing import Any

import peewee as pw

from store.lazy_tx import read_tx, write_tx
from store.models import _Base

OPERATOR_ACCOUNT_ID = "acct_shadow_operator"
OPERATOR_ACCOUNT_NAME = "shadow traffic (operator)"


class ShadowRun(_Base):
    id = pw.AutoField()
    at = pw.FloatField(index=True)
    model = pw.CharField()
    shadow_model = pw.CharField()
    ok = pw.IntegerField()                   # 1 answered, 0 failed (plain SQL reads it)
    error = pw.CharField(null=True)           # the error's type name, never its text
    primary_ms = pw.FloatField()
    shadow_ms = pw.FloatField()
    primary_tokens_in = pw.IntegerField()
    primary_tokens_out = pw.IntegerField()
    shadow_tokens_in = pw.IntegerField(default=0)
    shadow_tokens_out = pw.IntegerField(default=0)
    primary_cost_micros = pw.BigIntegerField()
    shadow_cost_micros = pw.BigIntegerField(default=0)
    similarity = pw.FloatField(null=True)

    class Meta:
        table_name = "shadow_run"


def ensure_operator_account(db, now: float | None = None) -> str:
    """The account shadow calls are charged to (one per store, created on first use)."""
    from store.models import Account, Wallet
    now = time.time() if now is None else now
    # Conflicts ignored: several processes starting at once all make sure of it.
    with write_tx(db):
        Account.insert(id=OPERATOR_ACCOUNT_ID, name=OPERATOR_ACCOUNT_NAME,
                       created_at=now).on_conflict_ignore().execute(db)
        Wallet.insert(account=OPERATOR_ACCOUNT_ID, balance_micros=0, held_micros=0,
                      updated_at=now).on_conflict_ignore().execute(db)
    return OPERATOR_ACCOUNT_ID


def record_shadow_run(db, **values: Any) -> None:
    with write_tx(db):
        values["ok"] = int(bool(values["ok"]))
        ShadowRun.insert(at=values.pop("at", time.time()), **values).execute(db)


_STATS = """SELECT model, shadow_model, COUNT(*), SUM(1 - ok),
 AVG(primary_ms), AVG(CASE WHEN ok = 1 THEN shadow_ms END),
 SUM(CASE WHEN ok = 1 THEN shadow_tokens_in - primary_tokens_in ELSE 0 END),
 SUM(CASE WHEN ok = 1 THEN shadow_tokens_out - primary_tokens_out ELSE 0 END),
 SUM(primary_cost_micros), SUM(shadow_cost_micros), AVG(similarity), COUNT(similarity),
 SUM(CASE WHEN ok = 1 THEN shadow_cost_micros - primary_cost_micros ELSE 0 END)
 FROM shadow_run WHERE at >= ? GROUP BY model, shadow_model ORDER BY model, shadow_model"""


def shadow_stats(db, since: float = 0.0) -> list[dict[str, Any]]:
    with read_tx(db):
        rows = db.execute_sql(_STATS, (since,)).fetchall()
    out = []
    for (model, shadow, n, failed, p_ms, s_ms, d_in, d_out, p_cost, s_cost, sim,
         compared, d_cost) in rows:
        out.append({"model": model, "shadow_model": shadow, "requests": n, "errors": failed,
                    "primary_latency_ms_avg": round(p_ms or 0.0, 3),
                    "shadow_latency_ms_avg": None if s_ms is None else round(s_ms, 3),
                    "tokens_in_delta": int(d_in or 0), "tokens_out_delta": int(d_out or 0),
                    "primary_cost_micros": int(p_cost or 0),
                    "shadow_cost_micros": int(s_cost or 0),
                    "cost_delta_micros": int(d_cost or 0),
                    "similarity_avg": None if sim is None else round(sim, 4),
                    "compared": compared})
    return out
