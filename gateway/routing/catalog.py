"""Public model ids and aliases -> the configured model and its ordered routes (pure).

The catalog is rebuilt from config (and on reload, and when an operator flips a
provider flag); lookups are dict hits. A disabled model, or one whose every route's
provider is disabled, is invisible: listing skips it and resolving it answers
model_not_found, exactly as if it were absent. The catalog also carries the mode rules
(routing/modes) built from the same config, so one swap changes both.
"""
from __future__ import annotations

from dataclasses import dataclass

from gateway import errors
from gateway.billing.pricing import TokenPrice
from gateway.config import Config, ModelConfig, RouteConfig
from gateway.routing.modes import rules_from


@dataclass(frozen=True)
class Entry:
    public_id: str           # the name the client used (an id or an alias)
    model: ModelConfig
    price: TokenPrice | None  # None when the model has no token prices: never served free


class Catalog:
    def __init__(self, config: Config, disabled_providers: frozenset[str] = frozenset()) -> None:
        self._disabled = disabled_providers | {p.id for p in config.providers if not p.enabled}
        self._by_name: dict[str, Entry] = {}
        self._models: list[Entry] = []
        # The wire a route speaks: its kind, and for an OpenAI-kind upstream on the
        # Responses API "openai_responses" (it keeps hosted tools Chat Completions drops).
        self._kinds = {p.id: p.kind if p.api == "chat" else f"{p.kind}_{p.api}"
                       for p in config.providers}
        for m in config.models:
            price = None
            if m.input_usd_per_mtok is not None and m.output_usd_per_mtok is not None:
                price = TokenPrice.from_usd_per_mtok(m.input_usd_per_mtok, m.output_usd_per_mtok,
                                                     m.cached_input_usd_per_mtok)
            for name in (m.id, *m.aliases):
                self._by_name[name] = Entry(name, m, price)
            self._models.append(self._by_name[m.id])
        self.rules = rules_from(config.routing)

    def provider_kind(self, route: RouteConfig) -> str | None:
        return self._kinds.get(route.provider)

    def routes(self, model: ModelConfig) -> tuple[RouteConfig, ...]:
        return tuple(r for r in model.routes if r.provider not in self._disabled)

    def _visible(self, e: Entry) -> bool:
        return e.model.enabled and bool(self.routes(e.model))

    def resolve(self, name: str) -> Entry:
        e = self._by_name.get(name)
        if e is None or not self._visible(e):
            raise errors.ModelNotFound(f"The model {name!r} does not exist or is not available",
                                       code="model_not_found")
        return e

    def resolve_pin(self, name: str) -> Entry:
        """A model named by X-Prism-Model-Prefer: the same lookup, an error that names
        the header, since the body's model field may be fine."""
        try:
            return self.resolve(name)
        except errors.ModelNotFound:
            raise errors.ModelNotFound(
                f"X-Prism-Model-Prefer names {name!r}, which is not an available model; "
                f"GET /v1/models lists the ids and aliases", code="model_not_found") from None

    def public_entries(self) -> list[Entry]:
        """Every visible public id, aliases as their own entries, in config order."""
        return [e for e in self._by_name.values() if self._visible(e)]

    def models(self) -> list[Entry]:
        """Every visible model once (under its id), in config order: smart routing's pool."""
        return [e for e in self._models if self._visible(e)]
