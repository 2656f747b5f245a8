"""`GET /v1/realtime?model=...`: the OpenAI Realtime WebSocket, served at the ASGI level.

Mounted in front of the Quart app (like /mcp) rather than as a Quart websocket route:
Quart cancels a websocket handler the moment its client disconnects, and a session
whose client left mid-response must still reach the upstream for that response's
usage before it settles (gateway.realtime.session). Here a disconnect is just an event.

The handshake authenticates (`Authorization: Bearer`, or the
`openai-insecure-api-key.<key>` subprotocol browsers use), resolves the model (it must
have the `realtime` capability and a route to an OpenAI- or Gemini-kind upstream or the
simulator; a Gemini route is bridged to the Live API, gateway.realtime.gemini_live)
and refuses with a plain HTTP answer in the OpenAI error shape when any of that fails.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable
from urllib.parse import parse_qs

import trio

from gateway import errors
from gateway.http import common
from gateway.realtime import meter, upstream
from gateway.realtime.money import SessionMoney
from gateway.realtime.session import RealtimeSession

log = logging.getLogger("prism.realtime")
PATH = "/v1/realtime"
_KEY_PROTOCOL = "openai-insecure-api-key."


def mount(app_asgi: Callable, services: Any) -> Callable:
    async def asgi(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "websocket" and scope.get("path", "").rstrip("/") == PATH:
            await serve(scope, receive, send, services)
        else:
            await app_asgi(scope, receive, send)
    return asgi


async def _refuse(scope: dict, send: Callable, err: errors.PrismError) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(common.error_body(err, "openai")).encode()
        await send({"type": "websocket.http.response.start", "status": err.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _credentials(scope: dict) -> tuple[str | None, str | None]:
    """(key, subprotocol to accept)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    auth = headers.get("authorization", "")
    key = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    offered = list(scope.get("subprotocols") or ())
    for p in offered:
        if p.startswith(_KEY_PROTOCOL):
            key = key or p[len(_KEY_PROTOCOL):]
    accept = "realtime" if "realtime" in offered else None
    return key, accept


async def _prepare(scope: dict, services: Any) -> tuple[SessionMoney, meter.RealtimePrice, Any]:
    key, _ = _credentials(scope)
    info = await services.keys.verify(key)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    name = (query.get("model") or [""])[0]
    if not name:
        raise errors.InvalidRequest("The model query parameter is required: "
                                    "/v1/realtime?model=<id>", field="model")
    entry = services.catalog.resolve(name)
    model = entry.model
    if "realtime" not in model.capabilities:
        raise errors.InvalidRequest(f"The model {model.id!r} does not support realtime sessions",
                                    field="model")
    # The plan's, the org's and the key's lists; an expired key is refused here.
    allowed = await services.admission.allowed_models(info.account_id, info.key_id)
    if allowed is not None and model.id not in allowed:
        raise errors.PlanRestricted(f"Your plan does not include the model {model.id!r}")
    price = meter.RealtimePrice.of(model)
    if price is None:
        raise errors.PriceMissing(f"The model {model.id!r} has no price configured, so it "
                                  "cannot be billed", code="price_missing")
    for route in services.catalog.routes(model):
        provider = services.config.provider(route.provider)
        if provider.kind in ("openai", "simulator", "gemini"):
            money = SessionMoney(services.pipeline, info.key_id, info.account_id, model.id,
                                 route, allowed)
            return money, price, provider
    raise errors.InvalidRequest(f"The model {model.id!r} has no route to a realtime-capable "
                                "upstream (an OpenAI- or Gemini-kind provider, or the "
                                "simulator)")


async def serve(scope: dict, receive: Callable, send: Callable, services: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        money, price, provider = await _prepare(scope, services)
    except errors.PrismError as err:
        await _refuse(scope, send, err)
        return
    limits = services.config.realtime
    try:
        async with upstream.connect(provider, money.route.model, limits.max_message_bytes) as up:
            _, subprotocol = _credentials(scope)
            await send({"type": "websocket.accept", "subprotocol": subprotocol})

            async def client_receive() -> str | bytes | None:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return None
                return message.get("text") if message.get("text") is not None else message.get("bytes", b"")

            async def client_send(text: str) -> None:
                await send({"type": "websocket.send", "text": text})

            async def client_close(code: int, reason: str) -> None:
                await send({"type": "websocket.close", "code": code, "reason": reason})

            session = RealtimeSession(price=price, money=money, limits=limits, upstream=up,
                                      receive=client_receive, send=client_send,
                                      close=client_close)
            await session.run()
    except errors.PrismError as err:
        await _refuse(scope, send, err)
    except trio.BrokenResourceError:
        pass            # the client's socket went away under a send: nothing left to tell
