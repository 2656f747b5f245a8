"""Upstream kind "anthropic": the Messages wire format over a pooled httpx client.

``POST {base_url}/v1/messages`` with the key in ``x-api-key`` (read once, at
construction, from the environment variable the config names) and a pinned
``anthropic-version``, so an API change on their side never silently changes ours. A
stream that ends without message_stop was cut and fails as an UpstreamError.
"""
from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import httpx

from gateway import canonical as c
from gateway import errors
from gateway.codecs import anthropic, anthropic_stream
from gateway.codecs.sse import SSEDecoder
from gateway.config import ProviderConfig
from gateway.providers import base

API_VERSION = "2023-06-01"
_PATH = "/v1/messages"
_MAX_ERROR_BODY = 65536


class AnthropicProvider:
    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if key:
            headers["x-api-key"] = key
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                                  write=config.read_timeout, pool=config.connect_timeout),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, req: c.Request, upstream_model: str) -> c.Response:
        body = anthropic.from_canonical_request(req, upstream_model)
        body.pop("stream", None)
        try:
            resp = await self._client.post(_PATH, content=json.dumps(body))
        except httpx.HTTPError as exc:
            raise base.transport_error(self.config.id, exc) from None
        if resp.status_code != 200:
            raise base.status_error(self.config.id, resp.status_code, resp.content, resp.headers)
        return anthropic.to_canonical_response(base.parse_json(self.config.id, resp.content))

    async def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]:
        body = anthropic.from_canonical_request(req, upstream_model)
        body["stream"] = True
        pid = self.config.id
        decoder = anthropic_stream.StreamDecoder()
        framer = SSEDecoder()
        try:
            async with self._client.stream("POST", _PATH, content=json.dumps(body)) as resp:
                if resp.status_code != 200:
                    raw = b""
                    async for chunk in resp.aiter_raw():
                        raw += chunk
                        if len(raw) > _MAX_ERROR_BODY:
                            break
                    raise base.status_error(pid, resp.status_code, raw, resp.headers)
                async for raw in resp.aiter_raw():
                    for sse in framer.feed(raw):
                        for ev in decoder.feed(base.parse_json(pid, sse.data.encode())):
                            yield ev
                for sse in framer.close():
                    for ev in decoder.feed(base.parse_json(pid, sse.data.encode())):
                        yield ev
        except httpx.HTTPError as exc:
            raise base.transport_error(pid, exc) from None
        for ev in decoder.close():
            yield ev
        if not decoder.finished:
            raise errors.UpstreamError(f"upstream {pid} ended the stream before message_stop")
