"""Liveness and readiness probes; no auth, no store access on the hot path."""
from __future__ import annotations

from quart import Blueprint

from gateway.http.common import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@bp.get("/livez")
async def live():
    return {"status": "ok"}


@bp.get("/readyz")
async def ready():
    if services().ready:
        return {"status": "ready"}
    return {"status": "starting", "message": "the store is not open yet"}, 503
