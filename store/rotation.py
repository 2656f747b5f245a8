"""Provider credential rotation: one row per provider whose credential differs from
prism.toml's or is being rotated (gateway.runtime.rotation says what the states mean).

A step (rotate, promote, rollback) is a compare-and-set on the row's generation, so
two processes (or two tasks) racing to roll the same rotation back write once; the
audit row and the cluster event that tells the other processes go in the same
transaction. Credentials given as values are stored sealed (encrypted with a key from
the environment); this module never sees them in plain text.
"""
from __future__ import annotations

import time
from typing import Any

import peewee as pw

from store.lazy_tx import read_tx, write_tx
from store.models import _Base

ROTATION_STATES = ("steady", "rotating")
_CREDENTIAL_FIELDS = ("kind", "ref", "sealed", "label")


class ProviderCredential(_Base):
    provider_id = pw.CharField(primary_key=True)
    state = pw.CharField()                          # steady | rotating
    generation = pw.IntegerField()                  # bumped by every step
    share = pw.FloatField(default=0.0)              # the new credential's traffic share
    current_kind = pw.CharField()                   # config | env | sealed
    current_ref = pw.CharField(null=True)           # environment variable name
    current_sealed = pw.TextField(null=True)        # ciphertext, never plain text
    current_label = pw.CharField()                  # safe to show (env name, fingerprint)
    new_kind = pw.CharField(null=True)
    new_ref = pw.CharField(null=True)
    new_sealed = pw.TextField(null=True)
    new_label = pw.CharField(null=True)
    started_at = pw.FloatField(null=True)
    updated_at = pw.FloatField()

    class Meta:
        table_name = "provider_credential"


class RotationConflict(Exception):
    """The row changed since the caller read it (another step won)."""


def _as_dict(r: ProviderCredential) -> dict[str, Any]:
    out: dict[str, Any] = {"provider_id": r.provider_id, "state": r.state,
                           "generation": r.generation, "share": r.share,
                           "started_at": r.started_at, "updated_at": r.updated_at}
    for slot in ("current", "new"):
        cred = {f: getattr(r, f"{slot}_{f}") for f in _CREDENTIAL_FIELDS}
        out[slot] = cred if cred["kind"] else None
    return out


def load_credentials(db) -> dict[str, dict[str, Any]]:
    """provider id -> its stored credential state."""
    with read_tx(db):
        rows = list(ProviderCredential.select().execute(db))
    return {r.provider_id: _as_dict(r) for r in rows}


def step_credentials(db, provider_id: str, expect_generation: int, state: dict[str, Any],
                     *, actor: str, action: str, detail: dict[str, Any],
                     now: float | None = None) -> dict[str, Any]:
    """Replace the provider's row with `state` (keys: state, share, current, new,
    started_at) if its generation is still `expect_generation` (0: no row yet), audit
    it and announce it, all in one transaction. Returns the stored row."""
    # store.models imports this module before store.db and store.flags exist.
    from store.cluster import post_event
    from store.flags import append_audit
    now = time.time() if now is None else now
    with write_tx(db):
        row = ProviderCredential.get_or_none(ProviderCredential.provider_id == provider_id)
        found = row.generation if row is not None else 0
        if found != expect_generation:
            raise RotationConflict(f"provider {provider_id!r} credentials changed meanwhile "
                                   f"(generation {found}, expected {expect_generation})")
        values: dict[str, Any] = {"state": state["state"], "generation": found + 1,
                                  "share": float(state.get("share", 0.0)),
                                  "started_at": state.get("started_at"), "updated_at": now}
        for slot in ("current", "new"):
            cred = state.get(slot) or {}
            for f in _CREDENTIAL_FIELDS:
                values[f"{slot}_{f}"] = cred.get(f)
        if row is None:
            ProviderCredential.insert(provider_id=provider_id, **values).execute(db)
        else:
            (ProviderCredential.update(**values)
             .where(ProviderCredential.provider_id == provider_id).execute(db))
        append_audit(db, actor, action, {"provider": provider_id, **detail}, now=now)
        post_event(db, "rotation.changed", {"provider": provider_id}, now=now)
        stored = ProviderCredential.get(ProviderCredential.provider_id == provider_id)
    return _as_dict(stored)


def rotation_history(db, provider_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The provider's rotation steps from the audit log, newest first."""
    import json
    from store.models import AuditLog
    query = (AuditLog.select().where(AuditLog.action.startswith("provider.rotation."))
             .order_by(AuditLog.id.desc()).limit(500))
    with read_tx(db):
        rows = list(query.execute(db))
    out = []
    for r in rows:
        detail = json.loads(r.detail)
        if detail.get("provider") == provider_id:
            out.append({"at": r.at, "actor": r.actor, "action": r.action, "detail": detail})
        if len(out) >= limit:
            break
    return out
