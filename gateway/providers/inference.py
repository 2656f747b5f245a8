"""Which upstream kinds serve which inference operation, and the object that does it.

inference_provider(pc, chat) builds the provider for a non-chat operation on one
configured upstream (chat: that upstream's chat provider, for OCR through a vision
model). OPERATIONS_BY_KIND is what routing checks before any call: a route whose kind
cannot serve an operation is skipped, and a model with no such route is refused.
"""
from __future__ import annotations

import dataclasses

from gateway import canonical as c
from gateway import canonical_ops as o
from gateway import errors, tokenizer
from gateway.config import ProviderConfig

OPERATIONS_BY_KIND = {
    "openai": ("embeddings", "speech", "transcription", "count_tokens", "ocr"),
    "gemini": ("embeddings", "speech", "transcription", "count_tokens", "ocr"),
    "anthropic": ("count_tokens", "ocr"),
    "cohere": ("rerank",),
    "searxng": ("search",),
    "tavily": ("search",),
    "mistral": ("ocr",),
    "simulator": ("embeddings", "rerank", "speech", "transcription", "count_tokens", "search", "ocr"),
}


def serves(kind: str, operation: str) -> bool:
    return operation in OPERATIONS_BY_KIND.get(kind, ())


class AnthropicCount:
    """Anthropic's exact counter, POST /v1/messages/count_tokens."""

    def __init__(self, config: ProviderConfig, *, transport=None) -> None:
        from gateway.providers import anthropic, base
        self.config = config
        headers = {"anthropic-version": anthropic.API_VERSION}
        if key := base.api_key(config):
            headers["x-api-key"] = key
        self._client = base.make_client(config, headers, transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def count_tokens(self, req: c.Request, model: str) -> o.CountResult:
        from gateway.codecs import anthropic
        from gateway.providers import base
        body = anthropic.from_canonical_request(req, model)
        for k in ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"):
            body.pop(k, None)
        data = await base.post_json(self._client, self.config.id, "/v1/messages/count_tokens", body)
        n = data.get("input_tokens") if isinstance(data, dict) else None
        if not isinstance(n, int) or n < 0:
            raise errors.UpstreamProtocolError(f"upstream {self.config.id} count_tokens has no input_tokens")
        return o.CountResult(input_tokens=n, exact=True)


def local_count(req: c.Request) -> o.CountResult:
    return o.CountResult(input_tokens=tokenizer.count_request(req), exact=False)


def provider_class(kind: str, operation: str) -> type | None:
    """The class serving ``operation`` on an upstream of ``kind``; None when the kind has
    none (counting tokens without an exact counter: the caller counts locally)."""
    if not serves(kind, operation):
        return None
    if kind == "simulator":
        from gateway.providers.simulator_inference import SimulatorInference
        return SimulatorInference
    if operation == "ocr" and kind != "mistral":
        from gateway.providers.vision_ocr import VisionOcr
        return VisionOcr
    if kind == "openai":
        if operation == "count_tokens":
            return None
        from gateway.providers.openai_inference import OpenAIInference
        return OpenAIInference
    if kind == "gemini":
        from gateway.providers.gemini_inference import GeminiInference
        return GeminiInference
    if kind == "anthropic":
        return AnthropicCount
    from gateway.providers import rerank_search_ocr as m
    return {"cohere": m.CohereProvider, "searxng": m.SearxngProvider, "tavily": m.TavilyProvider,
            "mistral": m.MistralProvider}[kind]


def inference_provider(pc: ProviderConfig, operation: str, chat=None):
    """A new provider object for ``operation`` on ``pc`` (None: see provider_class)."""
    cls = provider_class(pc.kind, operation)
    if cls is None:
        return None
    from gateway.providers.simulator_inference import SimulatorInference
    from gateway.providers.vision_ocr import VisionOcr
    return cls(pc, chat) if cls in (SimulatorInference, VisionOcr) else cls(pc)
