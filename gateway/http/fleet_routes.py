"""Operator routes of issue 16: provider key rotation, shadow traffic stats and the
cluster's nodes, behind the admin-token guard of admin.py.

    POST /-/admin/providers/{id}/rotate            {api_key_env | api_key, share?}
    POST /-/admin/providers/{id}/rotate/share      {share}
    POST /-/admin/providers/{id}/rotate/promote
    POST /-/admin/providers/{id}/rotate/rollback
    GET  /-/admin/providers/{id}/rotation          state, shares, counts, audit history
    GET  /-/shadow/stats                           per (model, shadow model) pair
    GET  /-/cluster/nodes                          every process's heartbeat

No answer ever carries a credential: sealed values are shown by fingerprint only.
"""
from __future__ import annotations

import time

from quart import Blueprint, request

from gateway import errors
from gateway.http import admin, common

bp = Blueprint("fleet", __name__, url_prefix="/-")
bp.before_request(admin._guard)

DEFAULT_SHARE = 0.1


def _actor() -> str:
    return f"admin-http:{request.remote_addr or '?'}"


def _fleet():
    return common.services().fleet


def _share(body: dict, default: float | None) -> float:
    share = admin._field(body, "share", (int, float), required=default is None)
    share = default if share is None else float(share)
    if not 0.0 <= share <= 1.0:
        raise errors.InvalidRequest("share must be between 0 and 1", field="share")
    return share


@bp.post("/admin/providers/<provider_id>/rotate")
async def rotate(provider_id: str):
    body = await common.read_json_object()
    unknown = sorted(set(body) - {"api_key_env", "api_key", "share"})
    if unknown:
        raise errors.InvalidRequest(f"unknown field {unknown[0]!r} (allowed: api_key_env, "
                                    "api_key, share)", field=unknown[0])
    rotations = _fleet().rotations
    cred = rotations.credential(env=admin._field(body, "api_key_env", str),
                                value=admin._field(body, "api_key", str))
    return await rotations.rotate(provider_id, cred, _share(body, DEFAULT_SHARE),
                                  actor=_actor()), 201


@bp.post("/admin/providers/<provider_id>/rotate/share")
async def rotate_share(provider_id: str):
    body = await common.read_json_object()
    return await _fleet().rotations.set_share(provider_id, _share(body, None), actor=_actor())


@bp.post("/admin/providers/<provider_id>/rotate/promote")
async def promote(provider_id: str):
    return await _fleet().rotations.promote(provider_id, actor=_actor())


@bp.post("/admin/providers/<provider_id>/rotate/rollback")
async def rollback(provider_id: str):
    return await _fleet().rotations.rollback(provider_id, actor=_actor())


@bp.get("/admin/providers/<provider_id>/rotation")
async def rotation(provider_id: str):
    fleet = _fleet()
    view = fleet.rotations.view(provider_id)
    view["history"] = await fleet.rotations.history(provider_id)
    return view


@bp.get("/shadow/stats")
async def shadow_stats():
    raw = request.args.get("since", "0")
    try:
        since = float(raw)
    except ValueError:
        raise errors.InvalidRequest("since must be a unix time in seconds", field="since") from None
    if not 0 <= since <= time.time() + 86400:
        raise errors.InvalidRequest("since must be a unix time in seconds", field="since")
    return await _fleet().shadow.stats(since)


@bp.get("/cluster/nodes")
async def cluster_nodes():
    return await _fleet().node_list()
