"""Shared request plumbing for every blueprint: body reading, auth, headers, errors.

Each dialect's blueprint sets ``g.dialect`` so the one error handler renders failures
in that client's own shape:

    openai     {"error": {"type", "message", "code", "param"}}
    anthropic  {"type": "error", "error": {"type", "message"}}
    gemini     {"error": {"code", "message", "status"}}
"""
from __future__ import annotations

import secrets
from typing import Any, Callable

from quart import current_app, g, request

from gateway import errors, jsonbody
from gateway.billing.pricing import format_usd
from gateway.engine.call import CallContext, Outcome
from gateway.routing import hints

# Each dialect's own error vocabulary, by HTTP status: clients key retries and fallbacks
# on these names. Prism's own name travels beside Anthropic's as prism_code.
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION",
                  403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
                  413: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                  500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                  504: "DEADLINE_EXCEEDED"}
_ANTHROPIC_TYPE = {400: "invalid_request_error", 401: "authentication_error",
                   402: "billing_error", 403: "permission_error", 404: "not_found_error",
                   409: "invalid_request_error", 413: "request_too_large",
                   422: "invalid_request_error", 429: "rate_limit_error", 500: "api_error",
                   502: "api_error", 503: "overloaded_error", 504: "timeout_error",
                   529: "overloaded_error"}


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
    message = err.message
    if err.detail is not None and err.request_id:
        # An upstream failure: what it said is the operator's; the client can quote this.
        message = f"{message}; request id {err.request_id}"
    if dialect == "anthropic":
        kind = _ANTHROPIC_TYPE.get(err.status) or (
            "invalid_request_error" if err.status < 500 else "api_error")
        return {"type": "error", "error": {"type": kind, "message": message,
                                           "prism_code": err.code or err.type_name}}
    if dialect == "gemini":
        status = _GEMINI_STATUS.get(err.status) or (
            "FAILED_PRECONDITION" if err.status < 500 else "INTERNAL")
        return {"error": {"code": err.status, "message": message, "status": status}}
    return {"error": {"type": err.type_name, "message": message,
                      "code": err.code or err.type_name, "param": getattr(err, "field", None)}}


def dumps(obj: Any) -> str:
    """Compact JSON for a reply or an SSE event (gateway.jsonbody.dumps)."""
    return jsonbody.dumps(obj)


async def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400 naming what is wrong with it
    (gateway.jsonbody is the one decoder; everything downstream trusts its output)."""
    return jsonbody.decode_object(await request.get_data(cache=False))


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
    ctx.allowed_models = await s.admission.allowed_models(info.account_id, info.key_id)
    # X-Prism-Mode / -Model-Prefer / -Session for routing, whatever the dialect.
    ctx.hints = hints.from_headers(header)
    return ctx


def outcome_headers(outcome: Outcome | None, model: str, prep: Any = None, *,
                    request_id: str | None = None) -> dict[str, str]:
    """Response headers for a generation. With no outcome yet (a stream about to start)
    they still carry what selection and dispatch already know (X-Prism-Task-Type,
    X-Prism-Failover), from ``prep``."""
    h = {"X-Prism-Model": model, "X-Request-Id": request_id or g.request_id}
    if outcome is None:
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
