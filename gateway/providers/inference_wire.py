"""The wire calls the inference providers need beyond providers/base.post_json: a body
of bytes back (speech), bytes as they arrive (streamed speech), a GET with a query
(SearXNG) and a multipart upload (transcription). Failures map through base exactly
as chat's do, and a stale pooled connection is retried once the same way."""
from __future__ import annotations

import json
from typing import AsyncIterator

import httpx
import trio

from gateway.providers import base

_MAX_ANSWER = 64 * 1024 * 1024


async def _send(client: httpx.AsyncClient, pid: str, request: httpx.Request) -> httpx.Response:
    for attempt in (1, 2):
        try:
            return await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            if attempt == 1 and base._stale_connection(exc):
                continue
            raise base.transport_error(pid, exc) from None
    raise AssertionError("unreachable")


async def stream_bytes(client: httpx.AsyncClient, pid: str, method: str, path: str, *,
                       content: bytes | str | None = None, params: dict | None = None,
                       headers: dict | None = None) -> AsyncIterator[bytes]:
    """The answer's body chunk by chunk; a non-2xx status raises before the first."""
    resp = await _send(client, pid, client.build_request(method, path, content=content, params=params,
                                                         headers=headers))
    try:
        if resp.status_code >= 300:
            raw = b""
            async for chunk in resp.aiter_bytes():
                raw += chunk
                if len(raw) > 64 * 1024:
                    break
            raise base.status_error(pid, resp.status_code, raw, resp.headers)
        async for chunk in resp.aiter_bytes():
            if chunk:
                yield chunk
    except httpx.HTTPError as exc:
        raise base.transport_error(pid, exc) from None
    finally:
        with trio.CancelScope(shield=True):
            await resp.aclose()


async def read_bytes(client: httpx.AsyncClient, pid: str, method: str, path: str, **kw) -> bytes:
    from gateway import errors
    out = bytearray()
    async for chunk in stream_bytes(client, pid, method, path, **kw):
        out += chunk
        if len(out) > _MAX_ANSWER:
            raise errors.UpstreamProtocolError(f"upstream {pid} answer is over {_MAX_ANSWER} bytes")
    return bytes(out)


async def read_json(client: httpx.AsyncClient, pid: str, method: str, path: str, **kw) -> object:
    return base.parse_json(pid, await read_bytes(client, pid, method, path, **kw))


def json_body(body: dict) -> str:
    return json.dumps(body)
