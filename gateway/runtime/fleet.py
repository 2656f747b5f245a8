"""The operator's view of the gateway beyond one request (issue 16): provider
credential rotation (runtime.rotation), shadow traffic (engine.shadow) and this
process's membership of the processes sharing the store (shared.cluster), with the
node facts the cluster view shows (version, config hash).

One value built by server.build_services and handed to http/ and control/ through
Services.fleet; each part got its own collaborators when it was built.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import store.cluster as cluster_store


def version() -> str:
    try:
        return metadata.version("prism-gateway")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class ConfigHash:
    """A short hash of the running config, recomputed only when a reload swapped it."""

    def __init__(self) -> None:
        self._of: Any = None
        self._hash = ""

    def __call__(self, config: Any) -> str:
        if config is not self._of:
            self._of, self._hash = config, hashlib.sha256(repr(config).encode()).hexdigest()[:16]
        return self._hash


@dataclass(eq=False)
class Fleet:
    rotations: Any      # runtime.rotation.Rotations
    shadow: Any         # engine.shadow.Shadow
    nodes: Any          # shared.cluster.Cluster: this process's heartbeat, shared or not
    writer: Any

    async def node_list(self, now: float | None = None) -> dict[str, Any]:
        """Every process that ever beat into this store and has not left cleanly, the
        ones silent past the stale limit marked stale."""
        now = time.time() if now is None else now
        rows = await self.writer.call(cluster_store.all_nodes)
        stale_s = self.nodes.stale_s
        out = []
        for r in rows:
            info = r.pop("info")
            out.append({**r, "version": info.get("version"),
                        "config_hash": info.get("config_hash"),
                        "in_flight": info.get("open", 0),
                        "finished": info.get("finished", 0),
                        "stale": now - r["seen_at"] > stale_s,
                        "self": r["id"] == self.nodes.node_id})
        return {"node": self.nodes.node_id, "stale_after_seconds": stale_s, "nodes": out}
