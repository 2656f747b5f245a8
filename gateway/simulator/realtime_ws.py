"""The simulator's `/v1/realtime` WebSocket over raw ASGI (hypercorn), for the HTTP
simulator: the same demand for a bearer credential as its HTTP routes, then one
RealtimeSim session (simulator/realtime.py) per connection."""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from gateway.simulator.core import SimOptions
from gateway.simulator.realtime import RealtimeSim, decode, serve_realtime

PATHS = ("/v1/realtime", "/realtime")


async def realtime_asgi(scope: dict[str, Any], receive: Any, send: Any,
                        options: SimOptions) -> None:
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    if not headers.get("authorization", "").lower().startswith("bearer "):
        await send({"type": "websocket.close", "code": 4001})
        return
    model = parse_qs(scope.get("query_string", b"").decode()).get("model", ["sim-realtime"])[0]
    await send({"type": "websocket.accept"})

    async def next_event() -> dict[str, Any] | None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return None
            event = decode(message.get("text") or message.get("bytes") or b"")
            if event is not None:
                return event

    async def send_event(event: dict[str, Any]) -> None:
        await send({"type": "websocket.send",
                    "text": json.dumps(event, ensure_ascii=False, separators=(",", ":"))})

    await serve_realtime(RealtimeSim(model, options), next_event, send_event)
