"""Operator routes under /-/: config, reload, metrics, provider health and flags, wallets.

The same operations the control socket offers (gateway.control.ops), over HTTP and
behind the same admin-token guard as the key routes in admin.py.
"""
from __future__ import annotations

from quart import Blueprint, Response, request

import store
from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.control import ops
from gateway.http import admin, common
from gateway.runtime.reload import reload_config

bp = Blueprint("admin_ops", __name__, url_prefix="/-")
# One guard for every admin route: a second copy could drift from the first.
bp.before_request(admin._guard)

_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


def _actor() -> str:
    return f"admin-http:{request.remote_addr or '?'}"


@bp.get("/config")
async def config_summary():
    return ops.config_summary(common.services())


@bp.post("/reload")
async def reload():
    result = await reload_config(common.services(), actor=_actor())
    if not result.ok:
        return {"error": {"type": "invalid_config", "code": "invalid_config",
                          "message": "The config file has problems; the running "
                                     "configuration is unchanged",
                          "problems": list(result.problems)}}, 400
    return result.as_dict()


@bp.get("/cluster")
async def cluster_nodes():
    """The processes sharing this store (their heartbeats), for operators and the
    dashboard; breakers and caches stay per process and are not listed here."""
    s = common.services()
    if s.cluster is None:
        return {"shared": False, "nodes": []}
    return {"shared": True, "node": s.cluster.node_id, "nodes": await s.cluster.nodes()}


@bp.get("/metrics")
async def metrics():
    s = common.services()
    open_holds = await s.writer.call(store.count_open_holds)
    text = s.metrics.render(open_holds=open_holds, providers=ops.provider_gauges(s))
    return Response(text, content_type=_PROMETHEUS)


@bp.get("/health/providers")
async def provider_health():
    return ops.health(common.services())


@bp.route("/providers/<provider_id>/flags", methods=["PUT", "PATCH"])
async def set_provider_flags(provider_id: str):
    body = await common.read_json_object()
    unknown = sorted(set(body) - {"enabled", "images", "video"})
    if unknown:
        raise errors.InvalidRequest(f"unknown field {unknown[0]!r} (allowed: enabled, "
                                    "images, video)", field=unknown[0])
    flags = {name: admin._field(body, name, bool) for name in ("enabled", "images", "video")}
    return await ops.set_flags(common.services(), provider_id, actor=_actor(), **flags)


@bp.post("/accounts/<account_id>/wallet")
async def adjust_wallet(account_id: str):
    body = await common.read_json_object()
    amount = admin._usd(body, "amount_usd", required=True, allow_negative=True)
    reason = admin._field(body, "reason", str, required=True)
    result = await ops.adjust_wallet(common.services(), account_id, amount, reason,
                                     actor=_actor())
    return {**result, "balance_usd": format_usd(result["balance_micros"]),
            "available_usd": format_usd(result["available_micros"])}
