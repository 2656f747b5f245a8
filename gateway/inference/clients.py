"""One inference client per configured upstream and operation, built once at start-up.

server.py builds InferenceClients from the config and the chat providers (OCR through
a vision model borrows the route's chat provider); routes hand it to the engine inside
each call value, so an operation's provider method finds the client for the route the
dispatcher is trying. Instances of the same class on one upstream are shared (one
connection pool per upstream, as chat has).
"""
from __future__ import annotations

from typing import Any

from gateway.config import Config
from gateway.providers.inference import OPERATIONS_BY_KIND, provider_class


class InferenceClients:
    def __init__(self, config: Config, chat_providers: dict[str, Any]) -> None:
        self._by_route: dict[tuple[str, str], Any] = {}
        owned: dict[tuple[str, type], Any] = {}
        for pc in config.providers:
            for op in OPERATIONS_BY_KIND.get(pc.kind, ()):
                cls = provider_class(pc.kind, op)
                if cls is None or (op == "ocr" and pc.kind != "mistral" and pc.id not in chat_providers):
                    continue
                if (pc.id, cls) not in owned:
                    takes_chat = cls.__name__ in ("SimulatorInference", "VisionOcr")
                    owned[(pc.id, cls)] = cls(pc, chat_providers.get(pc.id)) if takes_chat else cls(pc)
                self._by_route[(pc.id, op)] = owned[(pc.id, cls)]
        self._owned = list(owned.values())

    def get(self, provider_id: str, operation: str) -> Any | None:
        return self._by_route.get((provider_id, operation))

    async def aclose(self) -> None:
        for client in self._owned:
            await client.aclose()
