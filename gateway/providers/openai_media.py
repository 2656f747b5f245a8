"""Upstream media calls: OpenAI-compatible /images/generations and /videos, and the
in-process simulator's equivalent. The only media code that calls httpx.

media_client(pc) gives the client for a provider, or None for kinds that have no
image/video API here (anthropic: no image generation; gemini: its images come out of
generateContent parts, see gateway/media/chat_images.py; it has no video). Upstream
failures map through providers/base exactly as chat's do.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx

from gateway import errors
from gateway.config import ProviderConfig
from gateway.providers import base

MEDIA_KINDS = ("openai", "simulator")


class OpenAIMediaClient:
    # Reference images are forwarded as URLs: the upstream fetches them itself.
    needs_reference_bytes = False

    def __init__(self, config: ProviderConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        key = base.api_key(config)
        self._client = base.make_client(config, {"authorization": f"Bearer {key}"} if key else {},
                                        transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: dict | None = None) -> httpx.Response:
        try:
            resp = await self._client.request(
                method, path, content=None if body is None else json.dumps(body),
                headers={"content-type": "application/json"} if body is not None else None)
        except httpx.HTTPError as exc:
            raise base.transport_error(self.config.id, exc,
                                       base.credentials(self._client.headers)) from None
        if resp.status_code >= 300:
            raise base.status_error(self.config.id, resp.status_code, resp.content, resp.headers,
                                    base.credentials(self._client.headers))
        return resp

    async def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = await self._call(method, path, body)
        data = base.parse_json(self.config.id, resp.content)
        if not isinstance(data, dict):
            raise errors.UpstreamProtocolError(f"upstream {self.config.id} sent a non-object body")
        return data

    async def images(self, body: dict[str, Any], references: tuple[bytes, ...] = ()) -> dict:
        return await self._json("POST", "/images/generations", body)

    async def video_create(self, body: dict[str, Any]) -> dict:
        return await self._json("POST", "/videos", body)

    async def video_get(self, upstream_id: str) -> dict:
        return await self._json("GET", f"/videos/{upstream_id}")

    async def video_delete(self, upstream_id: str) -> None:
        await self._call("DELETE", f"/videos/{upstream_id}")

    async def video_content(self, upstream_id: str, max_bytes: int) -> tuple[bytes, str]:
        pid = self.config.id
        try:
            async with self._client.stream("GET", f"/videos/{upstream_id}/content") as resp:
                raw = bytearray()
                async for chunk in resp.aiter_raw():
                    raw += chunk
                    if len(raw) > max_bytes:
                        raise errors.UpstreamError(f"upstream {pid} video is over {max_bytes} bytes")
                if resp.status_code != 200:
                    raise base.status_error(pid, resp.status_code, bytes(raw), resp.headers,
                                            base.credentials(self._client.headers))
                return bytes(raw), resp.headers.get("content-type", "video/mp4")
        except httpx.HTTPError as exc:
            raise base.transport_error(pid, exc, base.credentials(self._client.headers)) from None


class SimulatorMediaClient:
    """The deterministic simulator in-process. It takes reference images as bytes (like
    a chat-image provider would), so the gateway fetches image_url for it; url-form
    results are data: URLs because there is no server to host them."""
    needs_reference_bytes = True

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.image_requests = 0
        self._cancelled: set[str] = set()

    async def aclose(self) -> None:
        return None

    async def images(self, body: dict[str, Any], references: tuple[bytes, ...] = ()) -> dict:
        from gateway.simulator import media
        self.image_requests += 1
        d = media.directives(body["prompt"])
        if "status" in d:
            raise errors.UpstreamError(f"upstream {self.config.id} failed (simulated)")
        n = body.get("n", 1)
        if d.get("returned", "").isdigit():
            n = min(n, int(d["returned"]))   # fewer images than asked (billing tests)
        pics = media.generate_images(body["prompt"], n, size=body.get("size"),
                                     aspect_ratio=body.get("aspect_ratio"),
                                     seed=body.get("seed"), references=references)
        data = []
        for pic in pics:
            b64 = base64.b64encode(pic).decode()
            data.append({"b64_json": b64} if body.get("response_format") == "b64_json"
                        else {"url": "data:image/png;base64," + b64})
            data[-1]["revised_prompt"] = body["prompt"]
        return {"created": int(time.time()), "data": data}

    async def video_create(self, body: dict[str, Any]) -> dict:
        from gateway.simulator import media
        vid = media.video_id(body["prompt"], time.time())
        return media.video_object(vid, body.get("model", ""))

    async def video_get(self, upstream_id: str) -> dict:
        from gateway.simulator import media
        if media.parse_video_id(upstream_id) is None:
            raise errors.UpstreamClientError(f"no video {upstream_id!r}")
        return media.video_object(upstream_id, "", cancelled=upstream_id in self._cancelled)

    async def video_delete(self, upstream_id: str) -> None:
        self._cancelled.add(upstream_id)

    async def video_content(self, upstream_id: str, max_bytes: int) -> tuple[bytes, str]:
        from gateway.simulator import media
        return media.mp4(upstream_id.encode()), "video/mp4"


def media_client(pc: ProviderConfig) -> OpenAIMediaClient | SimulatorMediaClient | None:
    if pc.kind == "openai":
        return OpenAIMediaClient(pc)
    if pc.kind == "simulator":
        return SimulatorMediaClient(pc)
    return None
