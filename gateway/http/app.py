"""create_app(services) -> QuartTrio: wires blueprints, limits and the one error handler.

Every failure a client can cause or suffer leaves here as JSON in its dialect with the
right status; an unexpected exception becomes a 500 with a request id and no traceback
(the traceback goes to the log).
"""
from __future__ import annotations

import logging

from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from gateway import errors
from gateway.http import (
    account_routes, admin, admin_ops, anthropic_routes, common, gemini_routes, health,
    models_routes, openai_routes, responses_routes,
)
from gateway.http import sessions_routes
from gateway.http import media_routes
from gateway.http.lean import LeanChat
from gateway.http.limits import BodyLimit, FinishAfterBody
from gateway.pipeline import CallContext
from gateway.services import Services

log = logging.getLogger("prism.http")


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
        if status == 413:
            err: errors.PrismError = errors.BodyTooLarge(
                f"Request body exceeds the {cfg.max_body_bytes} byte limit")
        elif status == 404:
            err = errors.NotFound(f"No route for {request.method} {request.path}")
        elif status == 405:
            err = errors.InvalidRequest(f"Method {request.method} is not allowed on {request.path}")
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
        log.exception("unhandled error in %s %s", request.method, request.path)
        err = errors.PrismError(f"Internal error; quote request id {getattr(g, 'request_id', '?')}")
        return await render(err)

    for module in (health, openai_routes, responses_routes, anthropic_routes, gemini_routes,
                   models_routes, admin, admin_ops, account_routes, sessions_routes):
        app.register_blueprint(module.bp)
    app.register_blueprint(media_routes.bp)
    async def log_oversize(request_id: str, path: str, dialect: str, err: errors.PrismError) -> None:
        ctx = CallContext(request_id=request_id, route=path, dialect=dialect)
        await services.pipeline.log_refusal(ctx, err)

    quart_app = FinishAfterBody(app.asgi_app, cfg.read_timeout)
    app.asgi_app = BodyLimit(LeanChat(quart_app, services), cfg.max_body_bytes,
                             common.error_body, log_oversize)
    return app
