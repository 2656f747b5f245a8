"""Which shared-state backends a process uses, from `[store]`, `[cache]` and whether it
runs beside others; and how a process applies the cluster's events. Called by
server.py, the composition root, so the choice is made in one place."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from gateway.config import Config
from gateway.shared.feed import (PG_PAYLOAD_BYTES, REDIS_PAYLOAD_BYTES, LiveFeed,
                                  transport_for)
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


def live_feed(config: Config) -> Callable[[str], LiveFeed] | None:
    """How this process reaches the others' dashboards: Redis pub/sub if configured,
    else PostgreSQL LISTEN/NOTIFY; None on SQLite (no bus between processes)."""
    transport = transport_for(config.cache.url, config.cache.prefix, config.store_target())
    if transport is None:
        return None
    limit = REDIS_PAYLOAD_BYTES if config.cache.url else PG_PAYLOAD_BYTES
    return lambda node_id: LiveFeed(transport, node_id, limit=limit)


def event_handler(services_of: Callable[[], "Services"]):
    """What this process does when another one (or the CLI) changed shared state."""
    async def apply(origin: str, kind: str, payload: dict[str, Any]) -> None:
        services = services_of()
        if kind == "key.revoked":
            services.keys.invalidate_key(payload["key_id"])
        elif kind == "flags.changed":
            await services.flags.load()
        elif kind in ("org.changed", "key.changed") and services.orgs is not None:
            # Organizations (gateway.orgs): drop the cached view; the next request reads it.
            for org_id in payload.get("org_ids", ()):
                services.orgs.invalidate(org_id=org_id)
            services.orgs.invalidate(key_id=payload.get("key_id"), accounts=kind == "org.changed")
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

