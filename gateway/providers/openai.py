"""Upstream kind "openai": the Chat Completions wire format over a pooled httpx client.

Also fits any OpenAI-compatible server (vLLM, Ollama, OpenRouter...). The key is read
from the environment variable the config names, once, at construction.
"""
from __future__ import annotations

import json
import os
from typing import AsyncIterator

import httpx

from gateway import canonical as c
from gateway import errors
from gateway.codecs import openai_chat, openai_chat_stream
from gateway.codecs.sse import SSEDecoder
from gateway.config import ProviderConfig
from gateway.providers import base


class OpenAIProvider:
    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        headers = {"content-type": "application/json"}
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if key:
            headers["authorization"] = f"Bearer {key}"
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
        body = openai_chat.from_canonical_request(req, upstream_model)
        body["stream"] = False
        body.pop("stream_options", None)
        try:
            resp = await self._client.post("/chat/completions", content=json.dumps(body))
        except httpx.HTTPError as exc:
            raise base.transport_error(self.config.id, exc) from None
        if resp.status_code != 200:
            raise base.status_error(self.config.id, resp.status_code, resp.content, resp.headers)
        return openai_chat.to_canonical_response(base.parse_json(self.config.id, resp.content))

    async def stream(self, req: c.Request, upstream_model: str) -> AsyncIterator[c.StreamEvent]:
        body = openai_chat.from_canonical_request(req, upstream_model)
        pid = self.config.id
        decoder = openai_chat_stream.StreamDecoder()
        framer = SSEDecoder()
        try:
            async with self._client.stream("POST", "/chat/completions", content=json.dumps(body)) as resp:
                if resp.status_code != 200:
                    raw = b""
                    async for chunk in resp.aiter_raw():
                        raw += chunk
                        if len(raw) > 65536:
                            break
                    raise base.status_error(pid, resp.status_code, raw, resp.headers)
                async for raw in resp.aiter_raw():
                    for sse in framer.feed(raw):
                        if sse.data == "[DONE]":
                            continue
                        for ev in decoder.feed(base.parse_json(pid, sse.data.encode())):
                            yield ev
                for sse in framer.close():
                    if sse.data != "[DONE]":
                        for ev in decoder.feed(base.parse_json(pid, sse.data.encode())):
                            yield ev
        except httpx.HTTPError as exc:
            raise base.transport_error(pid, exc) from None
        for ev in decoder.close():
            yield ev
        if not decoder.finished:
            raise errors.UpstreamError(f"upstream {pid} ended the stream before finishing")
