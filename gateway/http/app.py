"""create_app(services) -> QuartTrio: wires blueprints, limits and the one error handler.

Every failure a client can cause or suffer leaves here as JSON in its dialect with the
right status; an unexpected exception becomes a 500 with a request id and no traceback
(the traceback goes to the log).
"""
from __future__ import annotations

import logging

from quart import Response, g, has_request_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from gateway import errors
from gateway.http import (
    account_routes, admin, admin_ops, anthropic_routes, common, gemini_routes, health,
    models_routes, openai_routes, responses_routes,
)
from gateway.http import sessions_routes
from gateway.http import media_routes
from gateway.http import inference_routes, uploads
from gateway.http import a2a_routes, mcp_routes, realtime_routes
from gateway.http import org_routes
from gateway.http import fleet_routes
from gateway.http import assistants_routes, files_routes, vector_store_routes
from gateway.http import jobs_routes
from gateway.http.lean import LeanChat
from gateway.http.limits import BodyLimit, FinishAfterBody
from gateway.engine.call import CallContext
from gateway.engine.services import Services

log = logging.getLogger("prism.http")


def _target() -> tuple[str, str]:
    """(method, path) of what failed: an HTTP request, or a WebSocket handshake (which
    has no request context, so `request` would itself raise)."""
    if has_request_context():
        return request.method, request.path
    try:
        return "WebSocket", websocket.path
    except RuntimeError:
        return "?", "?"


def create_app(services: Services) -> QuartTrio:
    app = QuartTrio("prism")
    cfg = services.config.server
    app.config.update(
        PRISM_SERVICES=services,
        MAX_CONTENT_LENGTH=cfg.max_body_bytes,
        BODY_TIMEOUT=cfg.read_timeout,
        RESPONSE_TIMEOUT=cfg.max_request_seconds,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    @app.before_request
    async def _start() -> None:
        g.request_id = common.new_request_id()
        g.dialect = common.dialect_for_path(request.path)
        g.ctx = None

    @app.after_request
    async def _stamp(resp: Response) -> Response:
        resp.headers.setdefault("X-Request-Id", getattr(g, "request_id", ""))
        return resp

    async def render(err: errors.PrismError) -> Response:
        dialect = getattr(g, "dialect", "openai")
        if err.request_id is None:
            err.request_id = getattr(g, "request_id", None)
        ctx = getattr(g, "ctx", None)
        if ctx is not None and not ctx.logged:
            await services.pipeline.log_refusal(ctx, err)
        resp = Response(common.dumps(common.error_body(err, dialect)), status=err.status,
                        content_type="application/json")
        for k, v in err.headers.items():
            resp.headers[k] = v
        return resp

    @app.errorhandler(errors.PrismError)
    async def _prism_error(err: errors.PrismError) -> Response:
        return await render(err)

    @app.errorhandler(HTTPException)
    async def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        method, path = _target()
        if status == 413:
            err: errors.PrismError = errors.BodyTooLarge(
                f"Request body exceeds the {request.max_content_length} byte limit")
        elif status == 404:
            err = errors.NotFound(f"No route for {method} {path}")
        elif status == 405:
            err = errors.InvalidRequest(f"Method {method} is not allowed on {path}")
            err.status = 405
        elif status == 408:
            err = errors.InvalidRequest("Timed out reading the request body")
            err.status = 408
        else:
            err = errors.InvalidRequest(exc.description or "Bad request")
            err.status = status
        return await render(err)

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", *_target())
        err = errors.PrismError(f"Internal error; quote request id {getattr(g, 'request_id', '?')}")
        return await render(err)

    for module in (health, openai_routes, responses_routes, anthropic_routes, gemini_routes,
                   models_routes, admin, admin_ops, account_routes, sessions_routes):
        app.register_blueprint(module.bp)
    app.register_blueprint(media_routes.bp)
    app.register_blueprint(inference_routes.bp)
    caps = uploads.body_caps(services.config)
    app.request_class = uploads.request_class(app.request_class, caps)
    app.register_blueprint(mcp_routes.bp)
    app.register_blueprint(org_routes.bp)     # organizations (issue 16)
    app.register_blueprint(a2a_routes.bp)
    app.register_blueprint(fleet_routes.bp)   # rotation, shadow, cluster nodes (issue 16)
    # Files, vector stores and assistants (issue 13).
    for module in (files_routes, vector_store_routes, assistants_routes):
        app.register_blueprint(module.bp)
    # Async, scheduled and batch jobs (issue 14).
    app.register_blueprint(jobs_routes.bp)
    app.register_blueprint(jobs_routes.admin_bp)
    max_file = services.config.resources.max_file_bytes
    app.request_class = files_routes.upload_request_class(app.request_class, max_file)
    caps["/v1/files"] = max_file + files_routes.UPLOAD_SLACK
    async def log_oversize(request_id: str, path: str, dialect: str, err: errors.PrismError) -> None:
        ctx = CallContext(request_id=request_id, route=path, dialect=dialect)
        await services.pipeline.log_refusal(ctx, err)

    quart_app = FinishAfterBody(app.asgi_app, cfg.read_timeout)
    app.asgi_app = BodyLimit(LeanChat(quart_app, services), cfg.max_body_bytes,
                             common.error_body, log_oversize, caps)
    app.asgi_app = mcp_routes.mount(app.asgi_app, services.mcp.frontend)
    app.asgi_app = realtime_routes.mount(app.asgi_app, services)
    return app
