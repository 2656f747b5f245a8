"""ASGI guard for bodies declared larger than the limit.

Quart would refuse such a body too, but it answers while the client is still uploading
and the connection then closes with unread bytes, which the kernel turns into a reset
that eats the 413. Here the upload is read and discarded (up to a bound) first, so the
client actually receives the refusal. Chunked bodies that grow past the limit are still
caught by Quart's MAX_CONTENT_LENGTH.
"""
from __future__ import annotations

import json
import secrets
from typing import Any, Callable

from gateway import errors

# Past this much discarded upload we stop being polite and just close.
_DRAIN_FACTOR = 8


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int, render: Callable[[errors.PrismError, str], dict],
                 on_refuse: Callable[[str, str, str, errors.PrismError], Any],
                 larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Paths whose bodies are streamed to disk (uploads) and may be larger.
        self.larger = larger or {}
        self._render = render
        self._on_refuse = on_refuse  # writes the refused request's log row

    def _declared_length(self, scope: dict) -> int | None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = self._declared_length(scope)
        limit = self.larger.get(scope.get("path", ""), self.max_bytes)
        if declared is None or declared <= limit:
            await self.app(scope, receive, send)
            return
        drained = 0
        while drained <= min(limit, self.max_bytes) * _DRAIN_FACTOR:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            drained += len(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        err = errors.BodyTooLarge(f"Request body of {declared} bytes exceeds the "
                                  f"{limit} byte limit")
        from gateway.http.common import dialect_for_path
        path = scope.get("path", "")
        dialect = dialect_for_path(path)
        request_id = "req_" + secrets.token_hex(12)
        await self._on_refuse(request_id, path, dialect, err)
        body = json.dumps(self._render(err, dialect)).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode())]})
        await send({"type": "http.response.body", "body": body})


class FinishAfterBody:
    """Hold back a response's last body message until the request body has arrived.

    A route may answer before reading the body (a bad key, say). If the response then
    completes while the client is still uploading, hypercorn's h11 connection is left
    waiting for the rest of a request nobody reads and the keep-alive connection stops
    answering. Quart keeps reading the body in its own task, so waiting here (bounded
    by the body timeout) lets the request finish first and the connection stay usable.
    """

    def __init__(self, app: Any, body_timeout: float) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import trio
        arrived = trio.Event()

        async def watched_receive() -> dict:
            msg = await receive()
            if msg["type"] == "http.disconnect" or not msg.get("more_body", False):
                arrived.set()
            return msg

        async def guarded_send(msg: dict) -> None:
            if (msg["type"] == "http.response.body" and not msg.get("more_body", False)
                    and not arrived.is_set()):
                with trio.move_on_after(self.body_timeout):
                    await arrived.wait()
            await send(msg)

        await self.app(scope, watched_receive, guarded_send)
