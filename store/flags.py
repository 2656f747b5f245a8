"""Provider flag overrides and the operator audit log.

A ProviderFlag row holds only what an operator changed at run time; the gateway lays
it over prism.toml's values (gateway.runtime.flags). Every operator change is written to
audit_log in the same transaction as the change itself, so the log can never claim a
change that did not happen or miss one that did.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from store.cluster import post_event
from store.db import read_tx, write_tx
from store.models import AuditLog, ProviderFlag

FLAG_NAMES = ("enabled", "images", "video")


def _detail_json(detail: dict[str, Any]) -> str:
    # default=str: a stray non-JSON value must not be the reason a change is refused.
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)


def append_audit(db, actor: str, action: str, detail: dict[str, Any], *,
                 now: float | None = None) -> int:
    """One audit row, inside the caller's transaction if there is one; returns its id."""
    with write_tx(db):
        return (AuditLog.insert(at=time.time() if now is None else now, actor=actor,
                                action=action, detail=_detail_json(detail))
                .execute(db))


def audited(db, actor: str, action: str, detail: dict[str, Any],
            fn: Callable[..., Any], *args: Any,
            describe: Callable[[Any], dict[str, Any]] | None = None, **kwargs: Any) -> Any:
    """Run store operation `fn(db, *args, **kwargs)` and its audit row as one
    transaction. `describe(result)` adds what only the result knows (a new key's id);
    it must never return secrets."""
    with write_tx(db):
        result = fn(db, *args, **kwargs)
        extra = describe(result) if describe is not None else {}
        append_audit(db, actor, action, {**detail, **extra})
    return result


def audit_log(db, *, limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
    """The newest audit rows first, detail decoded."""
    query = AuditLog.select().order_by(AuditLog.id.desc()).limit(limit)
    if action is not None:
        query = query.where(AuditLog.action == action)
    with read_tx(db):
        rows = list(query.execute(db))
    return [{"id": r.id, "at": r.at, "actor": r.actor, "action": r.action,
             "detail": json.loads(r.detail)} for r in rows]


def load_provider_flags(db) -> dict[str, dict[str, bool | None]]:
    """provider id -> {enabled, images, video}, None where the file's value stands."""
    with read_tx(db):
        rows = list(ProviderFlag.select().execute(db))
    return {r.provider_id: {n: getattr(r, n) for n in FLAG_NAMES} for r in rows}


def set_provider_flags(db, provider_id: str, *, actor: str, enabled: bool | None = None,
                       images: bool | None = None, video: bool | None = None,
                       now: float | None = None) -> dict[str, bool | None]:
    """Override the given flags (None leaves one as it is) and audit the change;
    returns the provider's overrides after it."""
    changes = {n: v for n, v in (("enabled", enabled), ("images", images),
                                 ("video", video)) if v is not None}
    if not changes:
        raise ValueError("set_provider_flags needs at least one flag")
    for name, value in changes.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {value!r}")
    now = time.time() if now is None else now
    with write_tx(db):
        row = ProviderFlag.select().where(ProviderFlag.provider_id == provider_id).first(db)
        before = {n: getattr(row, n) for n in FLAG_NAMES} if row else dict.fromkeys(FLAG_NAMES)
        after = {**before, **changes}
        if row is None:
            ProviderFlag.insert(provider_id=provider_id, updated_at=now, **after).execute(db)
        else:
            (ProviderFlag.update(updated_at=now, **changes)
             .where(ProviderFlag.provider_id == provider_id).execute(db))
        append_audit(db, actor, "provider.flags",
                     {"provider_id": provider_id, "set": changes, "before": before}, now=now)
        post_event(db, "flags.changed", {"provider_id": provider_id}, now=now)
    return after
