"""What an operator can see and do, whichever way they ask (control socket or /-/ API).

Every function takes Services and returns plain data (dicts, lists, ints: money in
micro-USD) or raises from gateway.errors, so the socket turns the result into a Result
frame and the admin blueprint into JSON without either re-implementing the rules.
Everything that changes state writes an audit row in the same store transaction,
naming `actor`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import store
from gateway import errors
from gateway.runtime.keys import KeyInfo
from gateway.runtime.metrics import ProviderGauge

if TYPE_CHECKING:
    from gateway.engine.services import Services

# The admin API's own ceiling on one credit or correction (1M USD).
MAX_ADJUST_MICROS = 1_000_000 * 1_000_000
LIST_LIMIT = 1000
WINDOWS_NOTE = "quota windows arrive with plan billing"


def _items(rows: list, limit: int = LIST_LIMIT, **extra: Any) -> dict[str, Any]:
    return {"items": rows[:limit], "truncated": len(rows) > limit, **extra}


def redact_url(url: str) -> str:
    """A base URL with any user:password@ part removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


# ---------------------------------------------------------------- reading


def providers(s: "Services") -> dict[str, Any]:
    """Each provider's flags, breaker (the worst of its routes', and every route's own
    as the dispatcher keeps them) and recent traffic."""
    worst = s.dispatcher.provider_breaker_states()
    routes: dict[str, list[dict[str, Any]]] = {}
    for route in s.dispatcher.breaker_states().values():
        routes.setdefault(route["provider"], []).append(route)
    rows = []
    for pc in s.config.providers:
        state = s.flags.state(pc.id)
        rows.append({"id": pc.id, "kind": pc.kind, **state.as_dict(),
                     "overridden": s.flags.overridden(pc.id),
                     "breaker": worst.get(pc.id, "closed"),
                     "routes": routes.get(pc.id, []),
                     "recent": s.metrics.recent(pc.id),
                     "rotation": s.fleet.rotations.view(pc.id) if s.fleet is not None else None})
    return _items(rows)


def provider_gauges(s: "Services") -> list[ProviderGauge]:
    worst = s.dispatcher.provider_breaker_states()
    return [ProviderGauge(pc.id, s.flags.enabled(pc.id), worst.get(pc.id, "closed"))
            for pc in s.config.providers]


def models(s: "Services") -> dict[str, Any]:
    visible = {e.model.id for e in s.catalog.public_entries()}
    rows = []
    for m in s.config.models:
        rows.append({
            "id": m.id, "aliases": list(m.aliases), "tier": m.tier, "enabled": m.enabled,
            "visible": m.id in visible, "capabilities": list(m.capabilities),
            "input_usd_per_mtok": m.input_usd_per_mtok,
            "output_usd_per_mtok": m.output_usd_per_mtok,
            "routes": [{"provider": r.provider, "model": r.model,
                        "enabled": s.flags.enabled(r.provider)} for r in m.routes]})
    return _items(rows)


async def accounts(s: "Services") -> dict[str, Any]:
    return _items(await s.writer.call(store.account_summaries, limit=LIST_LIMIT + 1))


def key_row(key: Any) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "account_id": key.account_id,
            "prefix": key.prefix, "created_at": key.created_at,
            "revoked": key.revoked_at is not None, "revoked_at": key.revoked_at,
            "last_used_at": key.last_used_at}


async def keys(s: "Services", account_id: str | None = None) -> dict[str, Any]:
    rows = await s.writer.call(store.list_keys, account_id)
    return _items([key_row(k) for k in rows])


async def holds(s: "Services", account_id: str | None = None) -> dict[str, Any]:
    return _items(await s.writer.call(store.open_hold_rows, account_id,
                                      limit=LIST_LIMIT + 1))


def windows(s: "Services", account_id: str | None = None) -> dict[str, Any]:
    return _items([], note=WINDOWS_NOTE)


def health(s: "Services") -> dict[str, Any]:
    return {"providers": providers(s)["items"]}


def config_summary(s: "Services") -> dict[str, Any]:
    """The running configuration with secrets left out: environment variables are
    named and said to be set or not, never shown."""
    cfg = s.config
    return {
        "config_path": s.config_path,
        "admin_token_set": bool(s.admin_token),
        "server": {k: getattr(cfg.server, k) for k in cfg.server.__dataclass_fields__},
        "store": {k: getattr(cfg.store, k) for k in cfg.store.__dataclass_fields__},
        "control": {k: getattr(cfg.control, k) for k in cfg.control.__dataclass_fields__},
        "providers": [{
            "id": p.id, "kind": p.kind, "base_url": redact_url(p.base_url),
            "api_key_env": p.api_key_env or None,
            "api_key_set": bool(p.api_key_env and os.environ.get(p.api_key_env)),
            "file": {"enabled": p.enabled, "images": p.images, "video": p.video},
            "effective": s.flags.state(p.id).as_dict(),
        } for p in cfg.providers],
        "models": models(s)["items"],
        "plans": [{"id": p.id, "window_5h_usd": p.window_5h_usd,
                   "window_7d_usd": p.window_7d_usd, "daily_usd": p.daily_usd}
                  for p in cfg.plans],
    }


# ---------------------------------------------------------------- changing


async def set_flags(s: "Services", provider_id: str, *, actor: str,
                    enabled: bool | None = None, images: bool | None = None,
                    video: bool | None = None) -> dict[str, Any]:
    state = await s.flags.set(provider_id, actor=actor, enabled=enabled, images=images,
                              video=video)
    return {"id": provider_id, **state.as_dict(), "overridden": s.flags.overridden(provider_id)}


async def adjust_wallet(s: "Services", account_id: str, amount_micros: int, reason: str,
                        *, actor: str) -> dict[str, Any]:
    """A top-up (positive) or a correction (negative) with its reason; refused when it
    would leave the wallet's available money below zero."""
    if isinstance(amount_micros, bool) or not isinstance(amount_micros, int) \
            or amount_micros == 0 or abs(amount_micros) > MAX_ADJUST_MICROS:
        raise errors.InvalidRequest("amount must be a non-zero amount of at most "
                                    "1000000 USD either way", field="amount")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise errors.InvalidRequest("reason must be 1..500 characters", field="reason")
    fn = store.top_up if amount_micros > 0 else store.adjust
    detail = {"account_id": account_id, "amount_micros": amount_micros, "reason": reason}
    try:
        balance = await s.writer.call(store.audited, actor, "wallet.adjust", detail,
                                      fn, account_id, amount_micros, reason)
    except store.AccountNotFound:
        raise errors.NotFound(f"No account with id {account_id!r}") from None
    except store.WouldGoNegative as exc:
        raise errors.InvalidRequest(
            f"That correction would take the wallet below zero (balance "
            f"{exc.balance_micros}, held {exc.held_micros} micro-USD)",
            field="amount", code="would_go_negative") from None
    wallet = await s.writer.call(store.get_wallet, account_id)
    return {"account_id": account_id, "balance_micros": balance,
            "held_micros": wallet.held_micros,
            "available_micros": wallet.balance_micros - wallet.held_micros}


async def create_key(s: "Services", name: str, *, actor: str, credits_micros: int = 0,
                     account_id: str | None = None) -> dict[str, Any]:
    """A key for a new account (with opening credits) or an existing one. The
    plaintext is in the answer and nowhere else, the audit row included."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise errors.InvalidRequest("name must be 1..200 characters", field="name")
    if not 0 <= credits_micros <= MAX_ADJUST_MICROS:
        raise errors.InvalidRequest("credits must be 0..1000000 USD", field="credits")
    if account_id is not None:
        if credits_micros:
            raise errors.InvalidRequest("opening credits apply to a new account only",
                                        field="credits")
        try:
            key, plaintext = await s.writer.call(
                store.audited, actor, "key.create", {"account_id": account_id, "name": name},
                store.create_key, account_id, name, describe=lambda r: {"key_id": r[0].id})
        except store.AccountNotFound:
            raise errors.NotFound(f"No account with id {account_id!r}") from None
    else:
        _, key, plaintext = await s.writer.call(
            store.audited, actor, "key.create", {"name": name, "credits_micros": credits_micros},
            store.create_account_with_key, name, credits_micros,
            describe=lambda r: {"key_id": r[1].id, "account_id": r[0].id})
    s.keys.put(KeyInfo(key.id, key.account_id, key.name, key.key_hash))
    return {**key_row(key), "key": plaintext}


async def revoke_key(s: "Services", key_id: str, *, actor: str) -> dict[str, Any]:
    key = await s.writer.call(store.get_key, key_id)
    if key is None:
        raise errors.NotFound(f"No key with id {key_id!r}")
    changed = await s.writer.call(store.audited, actor, "key.revoke", {"key_id": key_id},
                                  store.revoke_key, key_id,
                                  describe=lambda r: {"changed": r})
    s.keys.invalidate_key(key_id)
    return {"id": key_id, "revoked": True, "changed": changed}


# ---------------------------------------------------------------- jobs (issue 14)

def job_row(job: Any, counts: dict[str, int]) -> dict[str, Any]:
    total = sum(v for k, v in counts.items() if k != "cost")
    done = sum(counts.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
    cost = counts.get("cost", 0) if job.kind == "batch" else job.cost_micros
    return {"id": job.id, "kind": job.kind, "account_id": job.account_id,
            "state": job.state, "phase": job.phase, "attempts": job.attempts,
            "progress": f"{done}/{total}" if job.kind == "batch" else
            (f"{job.runs} run(s)" if job.kind == "scheduled" else "-"),
            "cost_micros": cost, "created_at": job.created_at,
            "cancel_requested": bool(job.cancel_requested)}


async def jobs(s: "Services", account_id: str | None = None) -> dict[str, Any]:
    """The newest jobs of every kind, with each batch's progress and cost so far."""
    import store.batch_lines as sb
    import store.jobs as sj
    rows, more = await s.writer.call(sj.list_jobs, kind=None, account_id=account_id,
                                     limit=LIST_LIMIT)
    counts = await s.writer.call(sb.line_counts, [j.id for j in rows if j.kind == "batch"])
    return {"items": [job_row(j, counts.get(j.id, {})) for j in rows], "truncated": more}


async def cancel_job(s: "Services", job_id: str, *, actor: str) -> dict[str, Any]:
    import store.jobs as sj
    job = await s.jobs.cancel(job_id, None, sj.KINDS)
    await s.writer.call(store.append_audit, actor, "cancel_job",
                        {"job_id": job_id, "kind": job.kind, "account_id": job.account_id})
    return job_row(job, {})
async def rotation_step(s: "Services", provider_id: str, step: str, *,
                        actor: str) -> dict[str, Any]:
    """Promote or roll back a provider's key rotation; the provider's new state."""
    rotations = s.fleet.rotations
    if step == "promote":
        return await rotations.promote(provider_id, actor=actor)
    return await rotations.rollback(provider_id, actor=actor)
