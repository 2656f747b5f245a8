"""The lean ASGI path: POST /v1/chat/completions served without Quart's machinery.

On the hottest route Quart's request and response objects, its app and request
contexts and its ASGI adapter cost more CPU than the gateway's own work (py-spy, issue
18). This middleware sits in front of the Quart app and answers that one route straight
from the ASGI messages, through the same framework-free core the Quart route uses
(openai_routes.chat, common.verify_caller, common.error_body), so the two cannot
drift. Everything else (every other route, and chat requests with an Idempotency-Key,
whose replay machinery lives in Quart) passes through untouched.

Per request there is one cancel scope: first the body's deadline (server.read_timeout),
then the whole request's (server.max_request_seconds), which the client hanging up
also cancels (told by the lean front's `prism.on_disconnect` callback, or under plain
hypercorn by a watcher task reading `receive`). A client that
leaves mid-answer therefore stops the upstream read at once and is billed for what it
received, as on the Quart path; the pipeline's close is shielded either way.
"""
from __future__ import annotations

import logging
from typing import Any

import trio

from gateway import errors, jsonbody
from gateway.http import common
from gateway.http.openai_routes import chat
from gateway.engine.call import CallContext

log = logging.getLogger("prism.http")

_PATH = "/v1/chat/completions"
# Requests that need the Quart route: its idempotency decorator, or X-Prism-Async
# (queued for the job runner; a body with "async": true is diverted by `chat` itself).
_ROUTE_HEADERS = (b"idempotency-key", b"x-prism-async")


class LeanChat:
    def __init__(self, app: Any, services: Any) -> None:
        self.app = app
        self.s = services
        cfg = services.config.server
        self.max_body = cfg.max_body_bytes
        self.body_timeout = cfg.read_timeout
        self.deadline = cfg.max_request_seconds

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["path"] != _PATH or scope["method"] != "POST"
                or any(name in _ROUTE_HEADERS for name, _ in scope["headers"])):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in scope["headers"]}
        request_id = common.new_request_id()
        ctx = CallContext(request_id=request_id, route=_PATH, dialect="openai")
        exchange = _Exchange()
        # One scope bounds the body read (server.read_timeout) and then, moved on, the
        # whole request: hypercorn hands even a small body over in several messages, so
        # a scope of its own for the body would be entered on every request.
        start = trio.current_time()
        on_disconnect = scope["extensions"].get("prism.on_disconnect") \
            if "extensions" in scope else None
        with trio.CancelScope(deadline=start + min(self.body_timeout, self.deadline)
                              ) as request_scope:
            if on_disconnect is not None:
                # The lean front (gateway/http/front.py) watches the connection itself
                # and calls back if the client leaves: no watcher task of our own.
                def gone() -> None:
                    exchange.gone = True
                    request_scope.cancel()

                def body_read() -> None:
                    exchange.body_read = True
                    request_scope.deadline = start + self.deadline
                    on_disconnect(gone)

                await self._serve(ctx, headers, receive, send, exchange, body_read)
            else:
                async with trio.open_nursery() as nursery:
                    def body_read() -> None:
                        exchange.body_read = True
                        request_scope.deadline = start + self.deadline
                        nursery.start_soon(_watch_disconnect, receive, request_scope, exchange)

                    try:
                        await self._serve(ctx, headers, receive, send, exchange, body_read)
                    finally:
                        nursery.cancel_scope.cancel()
        if request_scope.cancelled_caught and not exchange.gone and not exchange.started:
            if exchange.body_read:
                err = errors.UpstreamTimeout(
                    f"The request did not finish within {self.deadline:g} s")
            else:
                err = errors.InvalidRequest("Timed out reading the request body")
                err.status = 408
            await self._refuse(ctx, err, send)

    async def _serve(self, ctx: CallContext, headers: dict[str, str], receive: Any, send: Any,
                     exchange: "_Exchange", watch: Any) -> None:
        try:
            try:
                body = await self._read_body(receive)
            except _ClientGone:
                exchange.gone = True
                return
            watch()
            await common.verify_caller(self.s, ctx, common.bearer_of(
                headers.get("authorization", "")), lambda name: headers.get(name.lower()))
            reply = await chat(self.s, ctx, jsonbody.decode_object(body))
            if reply.stream is None:
                out = _raw(reply.headers)
                out.append((b"content-length", str(len(reply.body)).encode()))
                exchange.started = True
                await send({"type": "http.response.start", "status": reply.status,
                            "headers": out})
                await send({"type": "http.response.body", "body": reply.body})
                return
            try:
                # What admission reported (RateLimit-*, wallet) leaves with the headers.
                for name, value in self.s.admission.pending_headers(ctx.request_id).items():
                    reply.headers.setdefault(name, value)
                exchange.started = True
                await send({"type": "http.response.start", "status": 200,
                            "headers": _raw(reply.headers)})
                async for chunk in reply.stream:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                with trio.CancelScope(shield=True):
                    await reply.stream.aclose()
            await send({"type": "http.response.body", "body": b""})
        except errors.PrismError as err:
            if exchange.started:
                raise   # the pipeline already said it in-band; nothing more to send
            await self._refuse(ctx, err, send)
        except Exception:
            if exchange.started:
                raise
            log.exception("unhandled error in POST %s", _PATH)
            await self._refuse(ctx, errors.PrismError(
                f"Internal error; quote request id {ctx.request_id}"), send)

    async def _read_body(self, receive: Any) -> bytes:
        msg = await receive()
        body = msg.get("body", b"")
        if msg["type"] == "http.disconnect":
            raise _ClientGone()
        if not msg.get("more_body", False):
            return body
        parts = [body]
        size = len(body)
        # Bounded by the request scope's first deadline (server.read_timeout).
        while msg["type"] == "http.request" and msg.get("more_body", False):
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise errors.BodyTooLarge(
                    f"Request body exceeds the {self.max_body} byte limit")
            parts.append(chunk)
        if msg["type"] == "http.disconnect":
            raise _ClientGone()
        return b"".join(parts)

    async def _refuse(self, ctx: CallContext, err: errors.PrismError, send: Any) -> None:
        if not ctx.logged:
            with trio.CancelScope(shield=True):
                await self.s.pipeline.log_refusal(ctx, err)
        body = common.dumps(common.error_body(err, "openai")).encode()
        headers = {"Content-Type": "application/json", **err.headers,
                   "X-Request-Id": ctx.request_id}
        out = _raw(headers)
        out.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": err.status, "headers": out})
        await send({"type": "http.response.body", "body": body})


class _ClientGone(Exception):
    """The client hung up while sending its request body."""


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]


class _Exchange:
    __slots__ = ("started", "gone", "body_read")

    def __init__(self) -> None:
        self.started = False    # the response's headers have left
        self.gone = False       # the client hung up
        self.body_read = False  # the request body is in


async def _watch_disconnect(receive: Any, scope: trio.CancelScope, exchange: _Exchange) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            exchange.gone = True
            scope.cancel()
            return
