"""Shared request plumbing for every blueprint: body reading, auth, headers, errors.

Each dialect's blueprint sets ``g.dialect`` so the one error handler renders failures
in that client's own shape:

    openai     {"error": {"type", "message", "code", "param"}}
    anthropic  {"type": "error", "error": {"type", "message"}}
    gemini     {"error": {"code", "message", "status"}}
"""
from __future__ import annotations

import json
import secrets
from typing import Any, Callable

from quart import current_app, g, request

from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.pipeline import CallContext, Outcome
from gateway.routing import hints

_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION",
                  403: "PERMISSION_DENIED", 404: "NOT_FOUND", 413: "INVALID_ARGUMENT",
                  429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 500: "INTERNAL"}


def dialect_for_path(path: str) -> str:
    """Which dialect's error shape a path answers in (before any blueprint has run)."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/") or ":generateContent" in path or ":streamGenerateContent" in path \
            or ":countTokens" in path:
        return "gemini"
    return "openai"


def services():
    return current_app.config["PRISM_SERVICES"]


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def error_body(err: errors.PrismError, dialect: str) -> dict[str, Any]:
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": err.type_name, "message": err.message}}
    if dialect == "gemini":
        return {"error": {"code": err.status, "message": err.message,
                          "status": _GEMINI_STATUS.get(err.status, "UNKNOWN")}}
    return {"error": {"type": err.type_name, "message": err.message,
                      "code": err.code or err.type_name, "param": getattr(err, "field", None)}}


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


async def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 4xx naming what is wrong with it."""
    return parse_json_object(await request.get_data(cache=False))


def parse_json_object(data: bytes) -> dict[str, Any]:
    if not data:
        raise errors.InvalidRequest("Request body is empty; send a JSON object")
    try:
        body = json.loads(data)
    except UnicodeDecodeError:
        raise errors.InvalidRequest("Request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise errors.InvalidRequest(f"Request body is not valid JSON: {exc.msg} at line "
                                    f"{exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise errors.InvalidRequest("Request body JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise errors.InvalidRequest(f"Request body must be a JSON object, not a JSON {type(body).__name__}")
    return body


def bearer_token() -> str | None:
    return bearer_of(request.headers.get("authorization", ""))


def bearer_of(auth: str) -> str | None:
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def authenticate(route: str, dialect: str, *extra_headers: str,
                       query_param: str | None = None, log: bool = True) -> CallContext:
    """Verify the caller's key; the context it returns follows the request to the log.

    With ``log`` (generation routes) the request leaves a request-log row however it
    ends, refusals included."""
    token = bearer_token()
    for name in extra_headers:
        token = token or request.headers.get(name)
    if query_param:
        token = token or request.args.get(query_param)
    ctx = CallContext(request_id=g.request_id, route=route, dialect=dialect)
    if log:
        g.ctx = ctx
    return await verify_caller(services(), ctx, token, request.headers.get)


async def verify_caller(s: Any, ctx: CallContext, token: str | None,
                        header: Callable[[str], str | None]) -> CallContext:
    """Fill the context from the caller's key and routing headers (``header`` looks a
    request header up case-insensitively), or raise AuthenticationError."""
    info = await s.keys.verify(token)
    ctx.account_id = info.account_id
    ctx.key_id = info.key_id
    # The plan's model list, so routing never picks a model the plan refuses (cached).
    ctx.allowed_models = await s.admission.allowed_models(info.account_id)
    # X-Prism-Mode / -Model-Prefer / -Session for routing, whatever the dialect.
    ctx.hints = hints.from_headers(header)
    return ctx


def outcome_headers(outcome: Outcome | None, model: str, prep: Any = None, *,
                    request_id: str | None = None) -> dict[str, str]:
    """Response headers for a generation. With no outcome yet (a stream about to start)
    they still carry what selection and dispatch already know (X-Prism-Task-Type,
    X-Prism-Failover), from ``prep`` or else from this request's context."""
    h = {"X-Prism-Model": model, "X-Request-Id": request_id or g.request_id}
    if outcome is None:
        if prep is None:
            prep = getattr(getattr(g, "ctx", None), "prepared", None)
        if prep is not None:
            if prep.failover:
                h["X-Prism-Failover"] = "true"
            h.update(prep.headers)
    if outcome is not None:
        h.update({"X-Prism-Cost": format_usd(outcome.cost_micros),
                  "X-Prism-Tokens-In": str(outcome.tokens_in),
                  "X-Prism-Tokens-Out": str(outcome.tokens_out)})
        if outcome.estimated:
            h["X-Prism-Usage-Estimated"] = "true"
        if outcome.failover:
            h["X-Prism-Failover"] = "true"
        h.update(outcome.headers)
    return h
