"""Upstream providers: one module per kind; build_providers makes one per config entry."""
from __future__ import annotations

import importlib

from gateway.config import Config, ConfigError, ProviderConfig

# kind -> (module, class); imported on demand so a kind's dependencies load only if used.
_KINDS = {
    "openai": ("gateway.providers.openai", "OpenAIProvider"),
    "anthropic": ("gateway.providers.anthropic", "AnthropicProvider"),
    "gemini": ("gateway.providers.gemini", "GeminiProvider"),
    "simulator": ("gateway.providers.simulator", "SimulatorProvider"),
    # One non-chat operation each (rerank, search, search, OCR); no chat methods.
    "cohere": ("gateway.providers.rerank_search_ocr", "CohereProvider"),
    "searxng": ("gateway.providers.rerank_search_ocr", "SearxngProvider"),
    "tavily": ("gateway.providers.rerank_search_ocr", "TavilyProvider"),
    "mistral": ("gateway.providers.rerank_search_ocr", "MistralProvider"),
}


def build_provider(pc: ProviderConfig):
    module_name, cls_name = _KINDS[pc.kind]
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError):
        raise ConfigError([f"providers: kind {pc.kind!r} (provider {pc.id!r}) is not available "
                           f"in this build"]) from None
    return cls(pc)


def build_providers(config: Config) -> dict:
    return {pc.id: build_provider(pc) for pc in config.providers}
