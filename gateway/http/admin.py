"""Admin routes under /-/ (keys and credits), guarded by PRISM_ADMIN_TOKEN.

With no token configured every admin route answers 403 saying how to enable them, so
an operator never wonders whether the route exists.
"""
from __future__ import annotations

import hmac
import time

from quart import Blueprint, g, request

import store
from gateway import errors
from gateway.runtime.keys import KeyInfo
from gateway.billing.pricing import format_usd, usd_to_micros
from gateway.http import common
from gateway.orgs.settings import key_settings_json, parse_key_update
from store import orgs as org_store
from store.budgets import key_budgets

bp = Blueprint("admin", __name__, url_prefix="/-")

_MAX_CREDIT_USD = 1_000_000.0


@bp.before_request
async def _guard() -> None:
    # Take the whole body before answering anything, refusals and body-less routes
    # included: a response that completes while the upload is still arriving leaves
    # hypercorn's keep-alive connection wedged (quart-trio cancels the close), and the
    # client's next request on it never gets an answer.
    await request.get_data(cache=True)
    token = common.services().admin_token
    if not token:
        raise errors.PermissionDenied(
            "Admin routes are disabled: start the gateway with PRISM_ADMIN_TOKEN set in its "
            "environment and send it as 'Authorization: Bearer <token>'")
    presented = common.bearer_token() or ""
    if not hmac.compare_digest(presented.encode(), token.encode()):
        raise errors.AuthenticationError("Invalid admin token", code="invalid_admin_token")


def _field(body: dict, name: str, kind: type | tuple, *, required: bool = False):
    value = body.get(name)
    if value is None:
        if required:
            raise errors.InvalidRequest(f"{name} is required", field=name)
        return None
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise errors.InvalidRequest(f"{name} must be a {names}", field=name)
    return value


def _name(body: dict, *, required: bool) -> str | None:
    name = _field(body, "name", str, required=required)
    if name is not None and (not name.strip() or len(name) > 200):
        raise errors.InvalidRequest("name must be 1..200 characters", field="name")
    return name


def _usd(body: dict, name: str, *, required: bool, allow_negative: bool) -> int | None:
    value = _field(body, name, (int, float), required=required)
    if value is None:
        return None
    if value != value or abs(value) > _MAX_CREDIT_USD or (value < 0 and not allow_negative):
        raise errors.InvalidRequest(f"{name} must be a finite amount"
                                    f"{'' if allow_negative else ' >= 0'} up to {_MAX_CREDIT_USD:.0f}",
                                    field=name)
    return usd_to_micros(value)


def _key_json(key, wallet=None) -> dict:
    out = {"id": key.id, "name": key.name, "account_id": key.account_id, "prefix": key.prefix,
           "created_at": key.created_at, "revoked": key.revoked_at is not None,
           "revoked_at": key.revoked_at, **key_settings_json(key)}
    if wallet is not None:
        out["balance_usd"] = format_usd(wallet.balance_micros)
        out["held_usd"] = format_usd(wallet.held_micros)
    return out


async def _call(fn, *args, **kwargs):
    return await common.services().writer.call(fn, *args, **kwargs)


async def _get_key(key_id: str):
    key = await _call(store.get_key, key_id)
    if key is None:
        raise errors.NotFound(f"No key with id {key_id!r}")
    return key


@bp.post("/keys")
async def create_key():
    body = await common.read_json_object()
    name = _name(body, required=True)
    credits = _usd(body, "credits_usd", required=False, allow_negative=False) or 0
    plan = _field(body, "plan", str)
    if plan is not None and plan not in {p.id for p in common.services().config.plans}:
        raise errors.InvalidRequest(f"unknown plan {plan!r}", field="plan")
    org_id = _field(body, "org_id", str)
    if org_id is not None and await _call(org_store.get_org, org_id) is None:
        raise errors.InvalidRequest(f"unknown organization {org_id!r}", field="org_id")
    account_id = _field(body, "account_id", str)
    if account_id is not None:
        # Credits and plan belong to a new account; taking them here and dropping them
        # would lose money the caller thinks it added.
        for extra, given in (("credits_usd", credits), ("plan", plan), ("org_id", org_id)):
            if given:
                raise errors.InvalidRequest(
                    f"{extra} cannot be combined with account_id: it applies to a new "
                    "account (use POST /-/keys/{id}/credits for an existing one)", field=extra)
        try:
            key, plaintext = await _call(store.create_key, account_id, name)
        except store.AccountNotFound:
            raise errors.InvalidRequest(f"No account with id {account_id!r}",
                                        field="account_id") from None
    else:
        _, key, plaintext = await _call(store.create_account_with_key, name, credits, plan=plan,
                                        org_id=org_id)
    common.services().keys.put(KeyInfo(key.id, key.account_id, key.name, key.key_hash))
    wallet = await _call(store.get_wallet, key.account_id)
    return {**_key_json(key, wallet), "key": plaintext}, 201


@bp.get("/keys")
async def list_keys():
    keys = await _call(store.list_keys)
    return {"object": "list", "data": [_key_json(k) for k in keys]}


@bp.get("/keys/<key_id>")
async def get_key(key_id: str):
    key = await _get_key(key_id)
    out = _key_json(key, await _call(store.get_wallet, key.account_id))
    if key.budget_micros is not None:
        # This month's standing against the key's budget.
        for b in await _call(key_budgets, key.account_id, time.time()):
            if b["key_id"] == key_id:
                out["budget_spent_micros"] = b["spent_micros"]
                out["budget_held_micros"] = b["held_micros"]
                out["budget_remaining_usd"] = format_usd(b["remaining_micros"])
    return out


@bp.put("/keys/<key_id>")
async def update_key(key_id: str):
    body = await common.read_json_object()
    await _get_key(key_id)
    changes = parse_key_update(body, common.services().config)
    key = await _call(store.update_key, key_id, **changes)
    common.services().keys.invalidate_key(key_id)
    if common.services().orgs is not None:
        common.services().orgs.invalidate(key_id=key_id)
    return _key_json(key, await _call(store.get_wallet, key.account_id))


@bp.delete("/keys/<key_id>")
async def revoke_key(key_id: str):
    await _get_key(key_id)
    await _call(store.revoke_key, key_id)
    common.services().keys.invalidate_key(key_id)
    return {"id": key_id, "revoked": True}


@bp.post("/keys/<key_id>/credits")
async def add_credits(key_id: str):
    body = await common.read_json_object()
    amount = _usd(body, "amount_usd", required=True, allow_negative=True)
    reason = _field(body, "reason", str) or "admin credit via /-/keys"
    if amount == 0:
        raise errors.InvalidRequest("amount_usd must not be zero", field="amount_usd")
    key = await _get_key(key_id)
    try:
        if amount > 0:
            balance = await _call(store.top_up, key.account_id, amount, reason)
        else:
            balance = await _call(store.adjust, key.account_id, amount, reason)
    except store.WouldGoNegative:
        raise errors.InvalidRequest("That correction would take the wallet below zero",
                                    field="amount_usd") from None
    return {"id": key_id, "account_id": key.account_id, "balance_usd": format_usd(balance),
            "request_id": g.request_id}
