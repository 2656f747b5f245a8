"""Upstream kind "gemini": the generateContent wire format over a pooled httpx client.

Calls ``{base_url}/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` with the key from the environment variable the
config names, read once at construction, in ``x-goog-api-key`` (never in the URL,
where access logs would keep it). A base_url that already ends in an API version
(``.../v1beta``, ``.../v1``) is used as it is. Bodies are read decoded
(``aiter_bytes``): Google compresses responses when asked, and httpx always asks.
"""
from __future__ import annotations

import re
from typing import AsyncIterator
from urllib.parse import quote

import httpx

from gateway import canonical as c
from gateway import errors
from gateway.codecs import gemini
from gateway.config import ProviderConfig
from gateway.providers import base

_VERSIONED = re.compile(r"/v1(?:alpha|beta)?\d*$")


class GeminiProvider:
    # Its streams wait only on network reads, each under the provider's read timeout
    # (gateway.engine.pipeline relays them without a deadline of its own per event).
    timed_reads = True

    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        key = base.api_key(config)
        base_url = config.base_url.rstrip("/")
        self._prefix = "" if _VERSIONED.search(base_url) else "/v1beta"
        self._client = base.make_client(config, {"x-goog-api-key": key} if key else {}, transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _path(self, upstream_model: str, method: str) -> str:
        # Config may name the model the way Gemini lists it, "models/gemini-2.5-flash".
        name = upstream_model.removeprefix("models/")
        return f"{self._prefix}/models/{quote(name, safe='-._~')}:{method}"

    async def complete(self, req: c.Request, upstream_model: str) -> c.Response:
        body = gemini.from_canonical_request(req, upstream_model)
        return gemini.to_canonical_response(await base.post_json(
            self._client, self.config.id, self._path(upstream_model, "generateContent"), body))

    async def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]:
        body = gemini.from_canonical_request(req, upstream_model)
        decoder = gemini.StreamDecoder()
        path = self._path(upstream_model, "streamGenerateContent")
        async for data in base.sse_json(self._client, self.config.id, path, body,
                                        params={"alt": "sse"}):
            for ev in decoder.feed(data):
                yield ev
        for ev in decoder.close():
            yield ev
        if not decoder.finished:
            raise errors.UpstreamError(f"upstream {self.config.id} ended the stream before finishing")
