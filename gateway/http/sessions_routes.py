"""GET and DELETE /v1/sessions/{id}: a caller's own session memory (gateway/sessions).

Sessions are looked up within the caller's account only, so another account's session
answers 404 exactly like one that never existed (never 403, which would confirm it
exists). Any customer key header works, since sessions span dialects.
"""
from __future__ import annotations

from quart import Blueprint

from gateway import errors
from gateway.http import common

bp = Blueprint("sessions", __name__)

_KEY_HEADERS = ("x-api-key", "x-goog-api-key")


def _not_found(session_id: str) -> errors.NotFound:
    return errors.NotFound(f"No session {session_id[:128]!r}; it may have expired",
                           code="session_not_found")


@bp.get("/v1/sessions/<session_id>")
async def get_session(session_id: str):
    ctx = await common.authenticate("/v1/sessions", "openai", *_KEY_HEADERS, log=False)
    info = await common.services().sessions.info(ctx.account_id, session_id)
    if info is None:
        raise _not_found(session_id)
    return info


@bp.delete("/v1/sessions/<session_id>")
async def delete_session(session_id: str):
    ctx = await common.authenticate("/v1/sessions", "openai", *_KEY_HEADERS, log=False)
    if not await common.services().sessions.delete(ctx.account_id, session_id):
        raise _not_found(session_id)
    return {"id": session_id, "object": "session.deleted", "deleted": True}
