"""Re-reading prism.toml into the running gateway (POST /-/reload).

Everything new is built before anything is swapped, and the swap itself has no
checkpoint in it, so a request sees either the old configuration or the new one,
never half of each. An invalid file changes nothing and its problems are returned.

Providers whose settings changed are rebuilt; the old objects are retired rather than
closed, because requests already in flight may still be using them (they are closed at
shutdown). Sections that only take effect at start-up (server, store, control,
bootstrap) keep their running values, so the config the gateway reports is the one it
runs; where the file differs they are reported as needing a restart.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

import store
from gateway import errors
from gateway.config import ConfigError, load_config
from gateway.providers import build_provider
from gateway.runtime.flags import build_catalog

if TYPE_CHECKING:
    from gateway.engine.services import Services

START_UP_SECTIONS = ("server", "store", "cache", "control", "bootstrap")


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    problems: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.ok == bool(self.problems):
            raise ValueError("a reload either succeeds or lists its problems")

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems), "added": list(self.added),
                "removed": list(self.removed), "rebuilt": list(self.rebuilt),
                "restart_required": list(self.restart_required)}


async def reload_config(s: "Services", *, actor: str, announce: bool = True) -> ReloadResult:
    """Re-read the config file and swap it in; with several processes, a successful
    reload is `announce`d so every other process re-reads the file too."""
    if not s.config_path:
        raise errors.InvalidRequest("This gateway was not started from a config file, so "
                                    "there is nothing to reload", code="no_config_path")
    try:
        new = await trio.to_thread.run_sync(load_config, s.config_path)
    except ConfigError as exc:
        result = ReloadResult(False, tuple(exc.problems))
        await s.writer.call(store.append_audit, actor, "config.reload",
                            {"path": s.config_path, "ok": False, "problems": exc.problems})
        return result
    old = s.config
    restart = tuple(name for name in START_UP_SECTIONS if getattr(old, name) != getattr(new, name))
    new = dataclasses.replace(new, base_dir=old.base_dir,
                              **{name: getattr(old, name) for name in START_UP_SECTIONS})
    old_pcs = {p.id: p for p in old.providers}
    new_pcs = {p.id: p for p in new.providers}
    built: dict[str, Any] = {}
    try:
        for pid, pc in new_pcs.items():
            if old_pcs.get(pid) != pc:
                built[pid] = build_provider(pc)
    except ConfigError as exc:
        with trio.CancelScope(shield=True):
            for provider in built.values():
                await provider.aclose()
        return ReloadResult(False, tuple(exc.problems))
    added = tuple(pid for pid in new_pcs if pid not in old_pcs)
    removed = tuple(pid for pid in old_pcs if pid not in new_pcs)
    rebuilt = tuple(pid for pid in built if pid in old_pcs)

    # The swap: no await from here to the audit call.
    providers = {pid: built.get(pid) or s.providers[pid] for pid in new_pcs}
    s.retired.extend(s.providers[pid] for pid in removed + rebuilt)
    s.live.config = new
    s.live.providers = providers
    s.flags.reconfigure(new)
    s.live.catalog = build_catalog(new, s.flags)
    s.metrics.set_models(m.id for m in new.models)

    result = ReloadResult(True, added=added, removed=removed, rebuilt=rebuilt,
                          restart_required=restart)
    await s.writer.call(store.append_audit, actor, "config.reload",
                        {"path": s.config_path, **result.as_dict()})
    if announce and s.cluster is not None:
        await s.cluster.publish("config.reloaded", {"actor": actor})
    return result
