"""What the dashboard's Orgs screen is shown (over the control socket): each org's
limits and this month's budget standing. Plain data, money in micro-USD; never a
credential (only the ids of the providers the org brings one for)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from store import budgets as budget_store
from store import orgs as org_store
from store.lazy_tx import read_tx

if TYPE_CHECKING:
    from gateway.engine.services import Services


def _standing(db, now: float) -> list[dict[str, Any]]:
    out = []
    with read_tx(db):
        for row in org_store.list_orgs(db):
            spent, held = budget_store.usage(db, "org", row["id"], now)
            accounts = db.execute_sql("SELECT COUNT(*) FROM account WHERE org_id = ?",
                                      (row["id"],)).fetchone()[0]
            cfg = row["config"]
            out.append({"id": row["id"], "name": row["name"], "accounts": accounts,
                        "models": cfg.get("models") or [], "modes": cfg.get("modes") or [],
                        "credential_providers": cfg.get("credential_providers") or [],
                        "budget_micros": row["budget_micros"],
                        "budget_mode": "hard" if row["budget_hard"] else "soft",
                        "spent_micros": spent, "held_micros": held,
                        "webhook": bool(cfg.get("webhook_url"))})
    return out


async def orgs(s: "Services") -> dict[str, Any]:
    now = time.time()
    rows = await s.writer.call(_standing, now)
    return {"items": rows, "period": budget_store.period_of(now)}
