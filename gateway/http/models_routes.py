"""GET /v1/models and /v1/models/{id} (plus /v1beta/models) in the caller's dialect.

One catalog, three shapes: OpenAI's list by default; Anthropic's when the request
carries ``anthropic-version``; Gemini's ``models/...`` list on /v1beta and when the key
arrives as ``x-goog-api-key`` or ``?key=``. Aliases appear as their own ids.
"""
from __future__ import annotations

from quart import Blueprint, g, request

from gateway.http import common
from gateway.routing.catalog import Entry

bp = Blueprint("models", __name__)

_KEY_HEADERS = ("x-api-key", "x-goog-api-key")


def _dialect() -> str:
    if request.path.startswith("/v1beta/") or request.headers.get("x-goog-api-key") or request.args.get("key"):
        return "gemini"
    if request.headers.get("anthropic-version"):
        return "anthropic"
    return "openai"


def _openai(e: Entry) -> dict:
    return {"id": e.public_id, "object": "model", "created": 0, "owned_by": e.model.owned_by}


def _anthropic(e: Entry) -> dict:
    return {"type": "model", "id": e.public_id, "display_name": e.public_id,
            "created_at": "1970-01-01T00:00:00Z"}


def _gemini(e: Entry) -> dict:
    caps = e.model.capabilities
    methods = ["generateContent", "streamGenerateContent", "countTokens"] if "chat" in caps else []
    return {"name": f"models/{e.public_id}", "baseModelId": e.model.id, "version": "1",
            "displayName": e.public_id, "description": f"{e.model.id} ({e.model.tier} tier)",
            "inputTokenLimit": e.model.context_window, "outputTokenLimit": e.model.max_output_tokens,
            "supportedGenerationMethods": methods}


_SHAPES = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}


async def _auth() -> str:
    dialect = _dialect()
    g.dialect = dialect
    await common.authenticate(request.path, dialect, *_KEY_HEADERS, query_param="key", log=False)
    return dialect


@bp.get("/v1/models")
@bp.get("/v1beta/models")
async def list_models():
    dialect = await _auth()
    items = [_SHAPES[dialect](e) for e in common.services().catalog.public_entries()]
    if dialect == "gemini":
        return {"models": items}
    if dialect == "anthropic":
        return {"data": items, "has_more": False,
                "first_id": items[0]["id"] if items else None,
                "last_id": items[-1]["id"] if items else None}
    return {"object": "list", "data": items}


@bp.get("/v1/models/<path:model_id>")
@bp.get("/v1beta/models/<path:model_id>")
async def get_model(model_id: str):
    dialect = await _auth()
    if dialect == "gemini" and model_id.startswith("models/"):
        model_id = model_id[len("models/"):]
    return _SHAPES[dialect](common.services().catalog.resolve(model_id))
