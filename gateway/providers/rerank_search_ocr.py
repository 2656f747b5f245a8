"""The upstream kinds that serve one non-chat operation each:

    cohere    POST /v2/rerank   (Cohere v2; Jina, Voyage, vLLM and TEI speak it too)
    searxng   GET  /search?format=json   (self-hosted metasearch; no key needed)
    tavily    POST /search      (Bearer key)
    mistral   POST /v1/ocr      (Bearer key)

A base_url that already ends in the API version (".../v2", ".../v1") is used as is.
"""
from __future__ import annotations

import httpx

from gateway import canonical_ops as o
from gateway.codecs import ocr, rerank, search
from gateway.config import ProviderConfig
from gateway.providers import base, inference_wire as wire


class _Upstream:
    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        key = base.api_key(config)
        self._client = base.make_client(config, {"authorization": f"Bearer {key}"} if key else {}, transport)
        self._versioned = config.base_url.rstrip("/").rsplit("/", 1)[-1] in ("v1", "v2")

    async def aclose(self) -> None:
        await self._client.aclose()


class CohereProvider(_Upstream):
    async def rerank(self, req: o.RerankRequest, model: str) -> o.RerankResult:
        path = "/rerank" if self._versioned else "/v2/rerank"
        data = await base.post_json(self._client, self.config.id, path, rerank.upstream_body(req, model))
        return rerank.upstream_result(data, len(req.documents))


class SearxngProvider(_Upstream):
    async def search(self, req: o.SearchRequest, model: str) -> o.SearchResult:
        results = []
        for q in req.queries:
            data = await wire.read_json(self._client, self.config.id, "GET", "/search",
                                        params=search.searxng_params(req, q))
            results.append(search.searxng_result(data, req))
        return search.merge(results, req.max_results * len(req.queries))


class TavilyProvider(_Upstream):
    async def search(self, req: o.SearchRequest, model: str) -> o.SearchResult:
        results = []
        for q in req.queries:
            data = await base.post_json(self._client, self.config.id, "/search", search.tavily_body(req, q))
            results.append(search.tavily_result(data, req))
        return search.merge(results, req.max_results * len(req.queries))


class MistralProvider(_Upstream):
    fetches_urls = True   # a document_url may be handed over as is

    async def ocr(self, req: o.OcrRequest, model: str) -> o.OcrResult:
        path = "/ocr" if self._versioned else "/v1/ocr"
        return ocr.upstream_result(await base.post_json(self._client, self.config.id, path,
                                                        ocr.upstream_body(req, model)))
