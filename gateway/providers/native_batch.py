"""Upstream batch APIs over HTTP (the only batch code that calls httpx): create an
upstream batch from lines already in its dialect (gateway.jobs.native_wire), read its
status, fetch its results, cancel it. Failures map through providers/base like every
upstream call's.

    openai      POST /files (purpose=batch, the JSONL), POST /batches, GET /batches/{id},
                GET /files/{output|error file}/content, POST /batches/{id}/cancel
    anthropic   POST /v1/messages/batches, GET /v1/messages/batches/{id},
                GET .../{id}/results (JSONL), POST .../{id}/cancel
    gemini      POST {v1beta}/models/{m}:batchGenerateContent (inline requests) answers
                a long-running operation ``batches/{id}``; GET {v1beta}/batches/{id}
                (results inline once done), POST {v1beta}/batches/{id}:cancel
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx

from gateway import errors
from gateway.codecs import multipart
from gateway.config import ProviderConfig
from gateway.providers import base
from gateway.providers.anthropic import API_VERSION

_VERSIONED = re.compile(r"/v1(?:alpha|beta)?\d*$")
_MAX_RESULTS = 512 * 1024 * 1024


def _headers(config: ProviderConfig) -> dict[str, str]:
    key = base.api_key(config)
    if config.kind == "openai":
        return {"authorization": f"Bearer {key}"} if key else {}
    if config.kind == "anthropic":
        return {"anthropic-version": API_VERSION, **({"x-api-key": key} if key else {})}
    return {"x-goog-api-key": key} if key else {}


def _jsonl(pid: str, raw: bytes) -> list[Any]:
    out = []
    for line in raw.splitlines():
        if line.strip():
            out.append(base.parse_json(pid, line))
    return out


def gemini_results(obj: dict) -> list:
    """The inlined responses of an ended Gemini batch operation (either place the API
    has put them: the operation's response, or the batch's output)."""
    for holder in (obj.get("response"), (obj.get("metadata") or {}).get("output"),
                   obj.get("output")):
        if isinstance(holder, dict):
            inl = holder.get("inlinedResponses")
            if isinstance(inl, dict):
                inl = inl.get("inlinedResponses")
            if isinstance(inl, list):
                return inl
    return []


class NativeBatchClient:
    def __init__(self, config: ProviderConfig, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.kind = config.kind
        self._client = base.make_client(config, _headers(config), transport)
        url = config.base_url.rstrip("/")
        self._gprefix = "" if _VERSIONED.search(url) else "/v1beta"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, *, body: Any = None, content: bytes | None = None,
                    ctype: str | None = None) -> httpx.Response:
        if body is not None:
            content, ctype = json.dumps(body).encode(), "application/json"
        try:
            resp = await self._client.request(method, path, content=content,
                                              headers={"content-type": ctype} if ctype else None)
        except httpx.HTTPError as exc:
            raise base.transport_error(self.config.id, exc,
                                       base.credentials(self._client.headers)) from None
        if resp.status_code >= 300:
            raise base.status_error(self.config.id, resp.status_code, resp.content, resp.headers,
                                    base.credentials(self._client.headers))
        if len(resp.content) > _MAX_RESULTS:
            raise errors.UpstreamProtocolError(f"upstream {self.config.id} sent too much")
        return resp

    async def _json(self, method: str, path: str, body: Any = None) -> dict:
        data = base.parse_json(self.config.id, (await self._call(method, path, body=body)).content)
        if not isinstance(data, dict):
            raise errors.UpstreamProtocolError(f"upstream {self.config.id} sent a non-object body")
        return data

    # ------------------------------------------------------------ the four verbs

    async def create(self, lines: list[dict], *, tag: str, upstream_model: str,
                     endpoint: str) -> tuple[str, str | None]:
        """Submit the lines; (upstream batch id, uploaded input file id or None)."""
        if self.kind == "openai":
            data = "".join(json.dumps(ln, separators=(",", ":")) + "\n" for ln in lines).encode()
            content, ctype = multipart.encode([("purpose", "batch")],
                                              [("file", f"{tag}.jsonl", "application/jsonl", data)])
            uploaded = base.parse_json(self.config.id, (await self._call(
                "POST", "/files", content=content, ctype=ctype)).content)
            file_id = uploaded.get("id") if isinstance(uploaded, dict) else None
            if not isinstance(file_id, str):
                raise errors.UpstreamProtocolError(f"upstream {self.config.id} sent no file id")
            batch = await self._json("POST", "/batches", {
                "input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h",
                "metadata": {"prism_group": tag}})
            return self._id(batch.get("id")), file_id
        if self.kind == "anthropic":
            batch = await self._json("POST", "/v1/messages/batches", {"requests": lines})
            return self._id(batch.get("id")), None
        name = upstream_model.removeprefix("models/")
        op = await self._json(
            "POST", f"{self._gprefix}/models/{quote(name, safe='-._~')}:batchGenerateContent",
            {"batch": {"display_name": tag, "input_config": {"requests": {"requests": lines}}}})
        return self._id(op.get("name")), None

    def _id(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise errors.UpstreamProtocolError(f"upstream {self.config.id} sent no batch id")
        return value

    async def find(self, tag: str) -> str | None:
        """The id of an upstream batch this gateway created under ``tag`` (OpenAI's
        metadata, Gemini's display name) among the most recent ones, or None. Anthropic
        keeps nothing of ours on a batch, so there it is always None."""
        if self.kind == "openai":
            listed = (await self._json("GET", "/batches?limit=100")).get("data")
            for b in listed if isinstance(listed, list) else []:
                meta = b.get("metadata") if isinstance(b, dict) else None
                if isinstance(meta, dict) and meta.get("prism_group") == tag:
                    return self._id(b.get("id"))
        elif self.kind == "gemini":
            listed = (await self._json("GET", f"{self._gprefix}/batches?pageSize=100")
                      ).get("operations")
            for op in listed if isinstance(listed, list) else []:
                meta = op.get("metadata") if isinstance(op, dict) else None
                if isinstance(meta, dict) and meta.get("displayName") == tag:
                    return self._id(op.get("name"))
        return None

    async def retrieve(self, upstream_id: str) -> dict:
        if self.kind == "openai":
            return await self._json("GET", f"/batches/{quote(upstream_id, safe='')}")
        if self.kind == "anthropic":
            return await self._json("GET", f"/v1/messages/batches/{quote(upstream_id, safe='')}")
        return await self._json("GET", f"{self._gprefix}/{upstream_id}")

    async def results(self, upstream_id: str, batch: dict) -> list[Any]:
        """Every result item of an ended batch (raw; native_wire decodes them)."""
        if self.kind == "openai":
            out: list[Any] = []
            for field in ("output_file_id", "error_file_id"):
                fid = batch.get(field)
                if isinstance(fid, str) and fid:
                    raw = (await self._call("GET", f"/files/{quote(fid, safe='')}/content")).content
                    out += _jsonl(self.config.id, raw)
            return out
        if self.kind == "anthropic":
            raw = (await self._call(
                "GET", f"/v1/messages/batches/{quote(upstream_id, safe='')}/results")).content
            return _jsonl(self.config.id, raw)
        return gemini_results(batch)

    async def cancel(self, upstream_id: str) -> None:
        if self.kind == "openai":
            await self._call("POST", f"/batches/{quote(upstream_id, safe='')}/cancel")
        elif self.kind == "anthropic":
            await self._call("POST", f"/v1/messages/batches/{quote(upstream_id, safe='')}/cancel")
        else:
            await self._call("POST", f"{self._gprefix}/{upstream_id}:cancel")
