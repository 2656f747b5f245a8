"""Which shared-state backends a process uses, from `[store]`, `[cache]` and whether it
runs beside others; and how a process applies the cluster's events. Called by
server.py, the composition root, so the choice is made in one place."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from gateway.config import Config
from gateway.shared.limiter import RedisLimiter, StoreLimiter

if TYPE_CHECKING:
    from gateway.engine.services import Services

log = logging.getLogger("prism.cluster")


def is_shared(config: Config, workers: int = 1) -> bool:
    """Several processes may share this store: PostgreSQL exists for that, and so
    does `--workers`."""
    return workers > 1 or config.server.workers > 1 or \
        config.store_target().startswith(("postgresql://", "postgres://"))


def writer_threads(config: Config) -> int:
    """SQLite has one writer; PostgreSQL gets the configured connection pool."""
    return config.store.pool_size if config.store_target().startswith(
        ("postgresql://", "postgres://")) else 1


def build_limiter(config: Config, writer: Any, shared: bool) -> Any:
    """Redis if configured, the store if several processes share it, else None (the
    admission's own in-memory GCRA)."""
    if config.cache.url:
        import redis
        return RedisLimiter(redis.Redis.from_url(config.cache.url), config.cache.prefix)
    if shared:
        return StoreLimiter(writer)
    return None


def event_handler(services_of: Callable[[], "Services"]):
    """What this process does when another one (or the CLI) changed shared state."""
    async def apply(origin: str, kind: str, payload: dict[str, Any]) -> None:
        services = services_of()
        if kind == "key.revoked":
            services.keys.invalidate_key(payload["key_id"])
        elif kind == "flags.changed":
            await services.flags.load()
        elif kind == "rotation.changed" and services.fleet is not None:
            await services.fleet.rotations.load()
        elif kind == "config.reloaded":
            if services.cluster is not None and origin == services.cluster.node_id:
                return
            from gateway.runtime.reload import reload_config
            result = await reload_config(services, actor=f"cluster:{origin}", announce=False)
            if not result.ok:
                log.error("config reload announced by %s failed here: %s", origin,
                          "; ".join(result.problems))
    return apply


class Finished:
    """A request observer counting finished requests, for this node's heartbeat."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, record: dict[str, Any]) -> None:
        self.count += 1


def node_info(admission: Any, finished: Finished) -> dict[str, Any]:
    return {"finished": finished.count, "open": len(getattr(admission, "_live", ()))}

