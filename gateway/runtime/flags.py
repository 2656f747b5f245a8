"""Provider runtime flags: enabled, images and video, as the running gateway sees them.

prism.toml gives each provider's defaults; an operator's overrides (control socket or
admin API) are persisted in the store and win over the file, flag by flag. A change
is written (with its audit row) before it is applied in memory, and applying it
rebuilds the routing catalog at once, so a disabled provider's models and routes are
gone from the very next request. The images and video routes ask `images(pid)` and
`video(pid)` on every request.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import trio

import store
from gateway import errors
from gateway.config import Config
from gateway.routing.catalog import Catalog


@dataclass(frozen=True)
class FlagState:
    enabled: bool
    images: bool
    video: bool

    def __post_init__(self) -> None:
        for name in ("enabled", "images", "video"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool")

    def as_dict(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


class ProviderFlags:
    """The effective flags of every configured provider.

    `on_change` is called (synchronously, on the event loop) after every change that
    can alter routing; the gateway passes a function that rebuilds its catalog.
    """

    def __init__(self, writer: Any, config: Config,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self._writer = writer
        self._config = config
        self._on_change = on_change
        self._overrides: dict[str, dict[str, bool | None]] = {}
        # Persist-then-apply must happen in one order for both steps; without the lock
        # two concurrent changes could be applied in memory in the other order.
        self._lock = trio.Lock()

    async def load(self) -> None:
        """Read the stored overrides (at start-up, before serving)."""
        self._overrides = await self._writer.call(store.load_provider_flags)
        self._on_change()

    def reconfigure(self, config: Config) -> None:
        """A reloaded file's defaults. Overrides for providers no longer configured
        stay stored (the provider may come back) but have no effect."""
        self._config = config

    def state(self, provider_id: str) -> FlagState:
        pc = self._config.provider(provider_id)  # KeyError for an unknown provider
        own = self._overrides.get(provider_id, {})

        def pick(name: str) -> bool:
            value = own.get(name)
            return getattr(pc, name) if value is None else value
        return FlagState(pick("enabled"), pick("images"), pick("video"))

    def _flag(self, provider_id: str, name: str) -> bool:
        try:
            return getattr(self.state(provider_id), name)
        except KeyError:
            return False

    def enabled(self, provider_id: str) -> bool:
        return self._flag(provider_id, "enabled")

    def images(self, provider_id: str) -> bool:
        return self._flag(provider_id, "enabled") and self._flag(provider_id, "images")

    def video(self, provider_id: str) -> bool:
        return self._flag(provider_id, "enabled") and self._flag(provider_id, "video")

    def disabled(self) -> frozenset[str]:
        return frozenset(p.id for p in self._config.providers if not self.enabled(p.id))

    def overridden(self, provider_id: str) -> dict[str, bool]:
        """The flags an operator has set on this provider (the rest follow the file)."""
        return {k: v for k, v in self._overrides.get(provider_id, {}).items() if v is not None}

    async def set(self, provider_id: str, *, actor: str, enabled: bool | None = None,
                  images: bool | None = None, video: bool | None = None) -> FlagState:
        """Persist, audit and apply; returns the provider's flags afterwards."""
        if not any(p.id == provider_id for p in self._config.providers):
            raise errors.NotFound(f"No provider with id {provider_id!r}")
        if enabled is None and images is None and video is None:
            raise errors.InvalidRequest("give at least one of enabled, images, video")
        async with self._lock:
            after = await self._writer.call(store.set_provider_flags, provider_id, actor=actor,
                                            enabled=enabled, images=images, video=video)
            self._overrides[provider_id] = after
            self._on_change()
        return self.state(provider_id)


def build_catalog(config: Config, flags: ProviderFlags) -> Catalog:
    """The catalog with the operator's flags applied.

    Catalog also treats a provider disabled in the file as disabled, so a provider the
    operator re-enabled is handed over with the file's flag replaced."""
    providers = tuple(dataclasses.replace(p, enabled=flags.enabled(p.id))
                      for p in config.providers)
    return Catalog(dataclasses.replace(config, providers=providers),
                   disabled_providers=flags.disabled())
