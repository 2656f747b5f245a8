"""Upstream providers: one module per kind; build_providers makes one per config entry."""
from __future__ import annotations

from gateway.config import Config


def build_provider(pc):
    if pc.kind == "openai":
        from gateway.providers.openai import OpenAIProvider
        return OpenAIProvider(pc)
    if pc.kind == "simulator":
        from gateway.providers.simulator import SimulatorProvider
        return SimulatorProvider(pc)
    raise NotImplementedError(f"provider kind {pc.kind!r} is not available yet")


def build_providers(config: Config) -> dict:
    return {pc.id: build_provider(pc) for pc in config.providers}
