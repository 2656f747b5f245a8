"""Admin routes for organizations (same admin token guard as /-/keys):

    GET    /-/orgs/configs                 every org: config, accounts, this month's budget
    POST   /-/orgs/configs/bulk            {"orgs": [{"id": ..., <config>}, ...]} all or nothing
    GET    /-/orgs/{org_id}/config
    PUT    /-/orgs/{org_id}/config         <config> (credentials kept when the body omits them)
    DELETE /-/orgs/{org_id}/config         its accounts move to the default org
    PUT    /-/orgs/{org_id}/accounts/{account_id}   move an account into the org
    GET    /-/health/providers/{org_id}    health and breakers of the routes the org uses

Credentials and webhook secrets are write-only: responses say which providers have
one ("credential_providers") and never the value.
"""
from __future__ import annotations

import re
import time
from typing import Any

from quart import Blueprint

from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.config import RouteConfig
from gateway.http import admin, common
from gateway.orgs.settings import (OrgConfig, budget_micros, parse_org, raise_problems,
                                   split_secrets)
from store import budgets as budget_store
from store import orgs as org_store

bp = Blueprint("orgs", __name__, url_prefix="/-")
bp.before_request(admin._guard)

_ORG_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BULK = 500


async def _call(fn, *args, **kwargs):
    return await common.services().writer.call(fn, *args, **kwargs)


def _check_id(org_id: Any, where: str) -> str:
    if not isinstance(org_id, str) or not _ORG_ID.match(org_id):
        raise errors.InvalidRequest(f"{where}: an org id is 1..64 letters, digits, '_', '.' "
                                    f"or '-', starting with a letter or digit", field=where)
    return org_id


async def _org_json(row: dict[str, Any], now: float) -> dict[str, Any]:
    cfg = row["config"]
    spent, held = await _call(_usage, row["id"], now)
    limit = row["budget_micros"]
    return {"id": row["id"], "name": row["name"], "config": cfg,
            "credential_providers": cfg.get("credential_providers", []),
            "accounts": len(await _call(org_store.org_accounts, row["id"])),
            "budget": None if limit is None else {
                "period": budget_store.period_of(now),
                "mode": "hard" if row["budget_hard"] else "soft",
                "limit_usd": format_usd(limit), "limit_micros": limit,
                "spent_usd": format_usd(spent), "spent_micros": spent,
                "held_usd": format_usd(held), "held_micros": held},
            "updated_at": row["updated_at"]}


def _usage(db, org_id: str, now: float) -> tuple[int, int]:
    from store.lazy_tx import read_tx
    with read_tx(db):
        return budget_store.usage(db, "org", org_id, now)


async def _prepared(org_id: str, body: dict, where: str, *, keep: dict | None
                    ) -> tuple[dict[str, Any] | None, list[str]]:
    """The row to store for one org config, or the problems naming its fields."""
    s = common.services()
    cfg, problems = parse_org(body, s.config, where)
    if cfg is None or problems:
        return None, problems
    plain, secrets = split_secrets(cfg)
    if keep is not None:
        # Omitted secrets keep their stored values; given ones replace them.
        old = s.orgs.box.open(keep.get("secrets_blob"))
        if "credentials" not in body:
            secrets = type(secrets)(old.credentials, secrets.webhook_secret)
        if "webhook_secret" not in body and cfg.webhook_url:
            secrets = type(secrets)(secrets.credentials, old.webhook_secret)
        plain["credential_providers"] = sorted(secrets.credentials)
        plain["webhook_signed"] = bool(secrets.webhook_secret)
    blob = s.orgs.box.seal(secrets)
    return {"id": org_id, "name": cfg.name or org_id, "config": plain, "secrets_blob": blob,
            "budget_micros": budget_micros(plain), "budget_hard": cfg.budget_mode == "hard"}, []


def _changed(org_ids: list[str]) -> None:
    orgs = common.services().orgs
    for org_id in org_ids:
        orgs.invalidate(org_id=org_id)
    orgs.invalidate(accounts=True)


@bp.get("/orgs/configs")
async def list_configs():
    now = time.time()
    rows = await _call(org_store.list_orgs)
    return {"object": "list", "data": [await _org_json(r, now) for r in rows]}


@bp.get("/orgs/<org_id>/config")
async def get_config(org_id: str):
    row = await _call(org_store.get_org, org_id)
    if row is None:
        raise errors.NotFound(f"No organization with id {org_id!r}")
    return await _org_json(row, time.time())


@bp.put("/orgs/<org_id>/config")
async def put_config(org_id: str):
    _check_id(org_id, "org_id")
    body = await common.read_json_object()
    existing = await _call(org_store.get_org, org_id)
    row, problems = await _prepared(org_id, body, "config", keep=existing)
    raise_problems(problems)
    await _call(org_store.put_orgs, [row])
    _changed([org_id])
    return await _org_json(await _call(org_store.get_org, org_id), time.time())


@bp.delete("/orgs/<org_id>/config")
async def delete_config(org_id: str):
    if not await _call(org_store.delete_org, org_id):
        raise errors.NotFound(f"No organization with id {org_id!r}")
    _changed([org_id])
    return {"id": org_id, "deleted": org_id != org_store.DEFAULT_ORG,
            "reset": org_id == org_store.DEFAULT_ORG}


@bp.post("/orgs/configs/bulk")
async def bulk():
    body = await common.read_json_object()
    items = body.get("orgs")
    if not isinstance(items, list) or not items or len(items) > MAX_BULK:
        raise errors.InvalidRequest(f"orgs: must be a list of 1..{MAX_BULK} org configs",
                                    field="orgs")
    rows, problems, seen = [], [], set()
    for i, item in enumerate(items):
        where = f"orgs[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected an object")
            continue
        item = dict(item)
        org_id = item.pop("id", None)
        try:
            _check_id(org_id, f"{where}.id")
        except errors.InvalidRequest as exc:
            problems.append(exc.message)
            continue
        if org_id in seen:
            problems.append(f"{where}.id: duplicate org id {org_id!r}")
            continue
        seen.add(org_id)
        existing = await _call(org_store.get_org, org_id)
        try:
            row, found = await _prepared(org_id, item, where, keep=existing)
        except errors.InvalidRequest as exc:
            found, row = [f"{where}.{exc.message}"], None
        problems += found
        if row is not None:
            rows.append(row)
    raise_problems(problems)
    await _call(org_store.put_orgs, rows)     # one transaction: all or nothing
    _changed([r["id"] for r in rows])
    return {"object": "list", "updated": [r["id"] for r in rows]}


@bp.put("/orgs/<org_id>/accounts/<account_id>")
async def move_account(org_id: str, account_id: str):
    if await _call(org_store.get_org, org_id) is None:
        raise errors.NotFound(f"No organization with id {org_id!r}")
    if not await _call(org_store.set_account_org, account_id, org_id):
        raise errors.NotFound(f"No account with id {account_id!r}")
    common.services().orgs.invalidate(accounts=True)
    return {"account_id": account_id, "org_id": org_id}


@bp.get("/health/providers/<org_id>")
async def org_health(org_id: str):
    s = common.services()
    view = await s.orgs.view(org_id)
    if view is None:
        raise errors.NotFound(f"No organization with id {org_id!r}")
    allowed = view.config.get("models") or []
    own = set(view.secrets.credentials)
    overrides = {o["model"]: o["routes"] for o in view.config.get("routes") or ()}
    routes = []
    for m in s.config.models:
        if allowed and m.id not in allowed and not set(m.aliases) & set(allowed):
            continue
        given = next((overrides[n] for n in (m.id, *m.aliases) if n in overrides), None)
        for r in m.routes if given is None else [RouteConfig(g["provider"], g["model"])
                                                 for g in given]:
            mine = r.provider in own
            routes.append({"model": m.id, "provider": r.provider, "upstream_model": r.model,
                           "routes_from": "gateway" if given is None else "org",
                           "credential": "org" if mine else "gateway",
                           "provider_enabled": s.flags.enabled(r.provider),
                           **s.dispatcher.breaker_snapshot(r, org_id if mine else None)})
    healthy = all(r["state"] != "open" and r["provider_enabled"] for r in routes)
    return {"org_id": org_id, "status": "ok" if healthy else "degraded", "routes": routes}


__all__ = ["bp", "OrgConfig"]
