"""Upstream kind "openai": the Chat Completions wire format over a pooled httpx client,
or the Responses API with ``api = "responses"`` (codecs/openai_responses_up.py).

Also fits any OpenAI-compatible server (vLLM, Ollama, OpenRouter...). The key is read
from the environment variable the config names, once, at construction, and sent as a
Bearer token. The wire loop (pooling, retry of a stale connection, SSE, error mapping)
is shared in providers/base.py.
"""
from __future__ import annotations

from typing import Any, AsyncIterator

import httpx

from gateway import canonical as c
from gateway import errors
from gateway.codecs import openai_chat, openai_responses_up
from gateway.config import ProviderConfig
from gateway.providers import base


class OpenAIProvider:
    # Its streams wait only on network reads, each under the provider's read timeout
    # (gateway.engine.pipeline relays them without a deadline of its own per event).
    timed_reads = True

    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        key = base.api_key(config)
        self._client = base.make_client(config, {"authorization": f"Bearer {key}"} if key else {},
                                        transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, req: c.Request, upstream_model: str) -> c.Response:
        if self.config.api == "responses":
            body = openai_responses_up.from_canonical_request(req, upstream_model)
            body.pop("stream", None)
            return openai_responses_up.to_canonical_response(await base.post_json(
                self._client, self.config.id, openai_responses_up.PATH, body))
        body = openai_chat.from_canonical_request(req, upstream_model)
        body["stream"] = False
        body.pop("stream_options", None)
        data = await base.post_json(self._client, self.config.id, "/chat/completions", body)
        return openai_chat.to_canonical_response(data)

    async def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]:
        if self.config.api == "responses":
            body = openai_responses_up.from_canonical_request(req, upstream_model)
            body["stream"] = True
            decoder: Any = openai_responses_up.StreamDecoder()
            path = openai_responses_up.PATH
        else:
            body = openai_chat.from_canonical_request(req, upstream_model)
            decoder = openai_chat.StreamDecoder()
            path = "/chat/completions"
        async for chunk in base.sse_json(self._client, self.config.id, path, body):
            for ev in decoder.feed(chunk):
                yield ev
        for ev in decoder.close():
            yield ev
        if not decoder.finished:
            raise errors.UpstreamError(f"upstream {self.config.id} ended the stream before finishing")
