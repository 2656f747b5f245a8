"""Upstream kind "anthropic": the Messages wire format over a pooled httpx client.

``POST {base_url}/v1/messages`` with the key in ``x-api-key`` (read once, at
construction, from the environment variable the config names) and a pinned
``anthropic-version``, so an API change on their side never silently changes ours. A
stream that ends without message_stop was cut and fails as an UpstreamError.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from gateway import canonical as c
from gateway import errors
from gateway.codecs import anthropic
from gateway.config import ProviderConfig
from gateway.providers import base

API_VERSION = "2023-06-01"
_PATH = "/v1/messages"


class AnthropicProvider:
    # Its streams wait only on network reads, each under the provider's read timeout
    # (gateway.engine.pipeline relays them without a deadline of its own per event).
    timed_reads = True

    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        headers = {"anthropic-version": API_VERSION}
        key = base.api_key(config)
        if key:
            headers["x-api-key"] = key
        self._client = base.make_client(config, headers, transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, req: c.Request, upstream_model: str) -> c.Response:
        body = anthropic.from_canonical_request(req, upstream_model)
        body.pop("stream", None)
        return anthropic.to_canonical_response(
            await base.post_json(self._client, self.config.id, _PATH, body))

    async def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]:
        body = anthropic.from_canonical_request(req, upstream_model)
        body["stream"] = True
        decoder = anthropic.StreamDecoder()
        async for data in base.sse_json(self._client, self.config.id, _PATH, body):
            for ev in decoder.feed(data):
                yield ev
        for ev in decoder.close():
            yield ev
        if not decoder.finished:
            raise errors.UpstreamError(f"upstream {self.config.id} ended the stream before message_stop")
