"""Upstream kind "gemini": the generateContent wire format over a pooled httpx client.

Calls ``{base_url}/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` with the key from the environment variable the
config names, read once at construction, in ``x-goog-api-key`` (never in the URL,
where access logs would keep it). A base_url that already ends in an API version
(``.../v1beta``, ``.../v1``) is used as it is. Bodies are read decoded
(``aiter_bytes``): Google compresses responses when asked, and httpx always asks.
"""
from __future__ import annotations

import json
import os
import re
from typing import AsyncIterator
from urllib.parse import quote

import httpx

from gateway import canonical as c
from gateway import errors
from gateway.codecs import gemini, gemini_stream
from gateway.codecs.sse import SSEDecoder
from gateway.config import ProviderConfig
from gateway.providers import base

_VERSIONED = re.compile(r"/v1(?:alpha|beta)?\d*$")
_MAX_ERROR_BODY = 65536


class GeminiProvider:
    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        headers = {"content-type": "application/json"}
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if key:
            headers["x-goog-api-key"] = key
        base_url = config.base_url.rstrip("/")
        self._prefix = "" if _VERSIONED.search(base_url) else "/v1beta"
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(connect=config.connect_timeout, read=config.read_timeout,
                                  write=config.read_timeout, pool=config.connect_timeout),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_connections),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _path(self, upstream_model: str, method: str) -> str:
        # Config may name the model the way Gemini lists it, "models/gemini-2.5-flash".
        name = upstream_model.removeprefix("models/")
        return f"{self._prefix}/models/{quote(name, safe='-._~')}:{method}"

    async def complete(self, req: c.Request, upstream_model: str) -> c.Response:
        body = gemini.from_canonical_request(req, upstream_model)
        try:
            resp = await self._client.post(self._path(upstream_model, "generateContent"),
                                           content=json.dumps(body))
        except httpx.HTTPError as exc:
            raise base.transport_error(self.config.id, exc) from None
        if resp.status_code != 200:
            raise base.status_error(self.config.id, resp.status_code, resp.content, resp.headers)
        return gemini.to_canonical_response(base.parse_json(self.config.id, resp.content))

    async def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]:
        body = gemini.from_canonical_request(req, upstream_model)
        pid = self.config.id
        decoder = gemini_stream.StreamDecoder()
        framer = SSEDecoder()
        path = self._path(upstream_model, "streamGenerateContent")
        try:
            async with self._client.stream("POST", path, params={"alt": "sse"},
                                           content=json.dumps(body)) as resp:
                if resp.status_code != 200:
                    raw = b""
                    async for chunk in resp.aiter_bytes():
                        raw += chunk
                        if len(raw) > _MAX_ERROR_BODY:
                            break
                    raise base.status_error(pid, resp.status_code, raw, resp.headers)
                async for raw in resp.aiter_bytes():
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
            raise errors.UpstreamError(f"upstream {pid} ended the stream before finishing")
