"""Organizations: the tables, the default organization and the config rows.

Every account belongs to one organization. `migrate` creates the default one
(DEFAULT_ORG) and moves every account that has none into it, so accounts made before
organizations existed keep working unchanged. An organization's config is stored as
two columns: `config_json`, the validated settings (gateway.orgs.config) with no
secrets in it, and `secrets_blob`, its provider credentials and webhook secret as
one ciphertext the gateway made (gateway.orgs.crypto); the store never sees them in
plain text. The monthly budget is copied into its own columns so admission reads it
with the rest of the org's settings. Budgets themselves (usage per month, the
charges holds make against them) are store.budgets.
"""
from __future__ import annotations

import json
import time
from typing import Any

import peewee as pw

from store.lazy_tx import read_tx, write_tx
from store.models import _Base

DEFAULT_ORG = "org_default"
MAX_ORG_ID = 64


class Organization(_Base):
    id = pw.CharField(primary_key=True)
    name = pw.CharField()
    config_json = pw.TextField(default="{}")
    secrets_blob = pw.TextField(null=True)        # ciphertext only
    budget_micros = pw.BigIntegerField(null=True)
    budget_hard = pw.BooleanField(default=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()

    class Meta:
        table_name = "organization"


class BudgetUsage(_Base):
    """One budget's month: spent (settled charges) and held (open charges), the limit
    last admitted against, and the highest alert threshold (percent) already sent."""
    scope = pw.CharField()          # 'org' | 'key'
    owner = pw.CharField()          # the org id or key id
    period = pw.CharField()         # 'YYYY-MM', UTC
    spent_micros = pw.BigIntegerField(default=0)
    held_micros = pw.BigIntegerField(default=0)
    limit_micros = pw.BigIntegerField(null=True)
    alerted = pw.IntegerField(default=0)

    class Meta:
        table_name = "budget_usage"
        primary_key = pw.CompositeKey("scope", "owner", "period")
        constraints = [pw.SQL("CHECK (held_micros >= 0)"),
                       pw.SQL("CHECK (spent_micros >= 0)")]


class BudgetCharge(_Base):
    """What one hold counts against one budget: its amount while open, what it was
    charged once settled, nothing once voided or expired. Ends with its hold, in the
    same transaction."""
    hold_id = pw.CharField()
    scope = pw.CharField()
    owner = pw.CharField()
    period = pw.CharField()
    amount_micros = pw.BigIntegerField()
    charged_micros = pw.BigIntegerField(default=0)
    state = pw.CharField(default="open")
    created_at = pw.FloatField()
    closed_at = pw.FloatField(null=True)

    class Meta:
        table_name = "budget_charge"
        primary_key = pw.CompositeKey("hold_id", "scope")
        constraints = [pw.SQL("CHECK (state IN ('open', 'settled', 'voided', 'expired'))"),
                       pw.SQL("CHECK (charged_micros BETWEEN 0 AND amount_micros)")]
        indexes = ((("state",), False),)


TABLES = (Organization, BudgetUsage, BudgetCharge)


def ensure_default_org(db, now: float | None = None) -> None:
    """Inside migrate's transaction: the default org exists and owns every account
    that has no org (the migration for accounts made before organizations)."""
    now = time.time() if now is None else now
    db.execute_sql("INSERT INTO organization (id, name, config_json, secrets_blob, "
                   "budget_micros, budget_hard, created_at, updated_at) "
                   "VALUES (?, 'Default', '{}', NULL, NULL, 1, ?, ?) "
                   "ON CONFLICT (id) DO NOTHING", (DEFAULT_ORG, now, now))
    db.execute_sql("UPDATE account SET org_id = ? WHERE org_id IS NULL", (DEFAULT_ORG,))


_COLUMNS = ("id", "name", "config_json", "secrets_blob", "budget_micros", "budget_hard",
            "created_at", "updated_at")


def _org(row: tuple) -> dict[str, Any]:
    out = dict(zip(_COLUMNS, row))
    out["config"] = json.loads(out.pop("config_json") or "{}")
    out["budget_hard"] = bool(out["budget_hard"])
    return out


def get_org(db, org_id: str) -> dict[str, Any] | None:
    with read_tx(db):
        row = db.execute_sql(f"SELECT {', '.join(_COLUMNS)} FROM organization WHERE id = ?",
                             (org_id,)).fetchone()
    return None if row is None else _org(row)


def list_orgs(db) -> list[dict[str, Any]]:
    with read_tx(db):
        rows = db.execute_sql(f"SELECT {', '.join(_COLUMNS)} FROM organization "
                              "ORDER BY id").fetchall()
    return [_org(r) for r in rows]


def _put(db, org_id: str, name: str, config: dict, secrets_blob: str | None,
         budget_micros: int | None, budget_hard: bool, now: float) -> None:
    db.execute_sql(
        "INSERT INTO organization (id, name, config_json, secrets_blob, budget_micros, "
        "budget_hard, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
        "config_json = excluded.config_json, secrets_blob = excluded.secrets_blob, "
        "budget_micros = excluded.budget_micros, budget_hard = excluded.budget_hard, "
        "updated_at = excluded.updated_at",
        (org_id, name, json.dumps(config, sort_keys=True), secrets_blob, budget_micros,
         bool(budget_hard), now, now))


def put_orgs(db, rows: list[dict[str, Any]], *, now: float | None = None) -> None:
    """Create or replace several orgs' configs in one transaction (all or nothing).
    Each row: id, name, config, secrets_blob, budget_micros, budget_hard."""
    now = time.time() if now is None else now
    with write_tx(db):
        for r in rows:
            _put(db, r["id"], r["name"], r["config"], r["secrets_blob"],
                 r["budget_micros"], r["budget_hard"], now)
        _announce(db, [r["id"] for r in rows], now)


def _announce(db, org_ids: list[str], now: float) -> None:
    """Other gateway processes on this store drop their cached view (store.cluster)."""
    from store.cluster import post_event
    post_event(db, "org.changed", {"org_ids": org_ids}, now=now)


def delete_org(db, org_id: str) -> bool:
    """Remove an org's config; its accounts move to the default org. The default org
    itself is never removed (its config is reset instead)."""
    now = time.time()
    with write_tx(db):
        if org_id == DEFAULT_ORG:
            cur = db.execute_sql("UPDATE organization SET config_json = '{}', "
                                 "secrets_blob = NULL, budget_micros = NULL, "
                                 "updated_at = ? WHERE id = ?", (now, org_id))
            return cur.rowcount == 1
        cur = db.execute_sql("DELETE FROM organization WHERE id = ?", (org_id,))
        db.execute_sql("UPDATE account SET org_id = ? WHERE org_id = ?", (DEFAULT_ORG, org_id))
        if cur.rowcount == 1:
            _announce(db, [org_id], now)
        return cur.rowcount == 1


def set_account_org(db, account_id: str, org_id: str) -> bool:
    with write_tx(db):
        if db.execute_sql("SELECT 1 FROM organization WHERE id = ?", (org_id,)).fetchone() is None:
            return False
        cur = db.execute_sql("UPDATE account SET org_id = ? WHERE id = ?", (org_id, account_id))
        if cur.rowcount == 1:
            _announce(db, [org_id], time.time())
        return cur.rowcount == 1


def account_org(db, account_id: str) -> str | None:
    with read_tx(db):
        row = db.execute_sql("SELECT org_id FROM account WHERE id = ?", (account_id,)).fetchone()
    return None if row is None else (row[0] or DEFAULT_ORG)


def org_accounts(db, org_id: str) -> list[str]:
    with read_tx(db):
        rows = db.execute_sql("SELECT id FROM account WHERE org_id = ? ORDER BY id",
                              (org_id,)).fetchall()
    return [r[0] for r in rows]
