"""Provider key rotation: a second credential live beside the first, taking a share
of the provider's traffic, then promoted or rolled back.

    steady   one credential: prism.toml's (no row) or one promoted earlier
    rotating two: `current` takes 1 - share of the calls, `new` takes share

    rotate   steady -> rotating     (POST /-/admin/providers/{id}/rotate)
    promote  rotating -> steady     new becomes current
    rollback rotating -> steady     new is dropped; also automatic when the upstream
                                    refuses the new credential (401/403)

A credential is an environment variable name (read when the provider is built) or a
value, stored sealed (gateway.runtime.sealing) and opened only into the provider's
client headers. Every step is one compare-and-set store write with its audit row and
a cluster event, so other processes reload the state (`load`) within a second and a
restart finds it where it was. The per-credential request and error counts are this
process's since the rotation began (they restart at zero with the process).

The dispatcher asks `pick` which credential a call uses; a call the upstream refuses
on the new credential rolls the rotation back and is served again on the current one,
so the client never sees the new key's refusal.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
import re
import time
from typing import Any, Callable

import trio

from gateway import errors
from gateway.config import ProviderConfig
from gateway.providers import build_provider
from gateway.providers.base import CredentialedConfig
from gateway.runtime.sealing import SECRET_KEY_ENV, SealBroken, Sealer, fingerprint
from store.rotation import RotationConflict, load_credentials, step_credentials

log = logging.getLogger("prism.rotation")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_SECRET_CHARS = 4096
SLOTS = ("current", "new")


class RotationStateError(errors.ClientError):
    """The step does not fit the rotation's state (409; code says which)."""
    status = 409
    type_name = "conflict"


@dataclasses.dataclass
class _Counts:
    requests: int = 0
    errors: int = 0
    auth_failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Rotations:
    def __init__(self, writer: Any, config_of: Callable[[], Any], retire: Callable[[Any], None],
                 *, sealer: Sealer | None = None,
                 build: Callable[[ProviderConfig], Any] = build_provider,
                 rng: Callable[[], float] = random.random) -> None:
        """`config_of` gives the live config; `retire` takes a provider that in-flight
        calls may still use (closed at shutdown)."""
        self._writer = writer
        self._config_of = config_of
        self._retire = retire
        self._sealer = sealer
        self._build = build
        self._rng = rng
        self._rows: dict[str, dict[str, Any]] = {}
        # provider id -> slot -> (provider, secret); current is absent for prism.toml's.
        self._built: dict[str, dict[str, tuple[Any, str]]] = {}
        self._counts: dict[str, dict[str, _Counts]] = {}
        # The provider config each one's clients were built from (see _follow_config).
        self._built_for: dict[str, ProviderConfig] = {}
        self._lock = trio.Lock()

    # ------------------------------------------------------------ the request path

    def pick(self, provider_id: str) -> tuple[str, Any] | None:
        """(slot, provider or None for the live one) for one call; None when nothing
        about this provider's credential is overridden."""
        row = self._rows.get(provider_id)
        if row is None:
            return None
        self._follow_config(provider_id)
        built = self._built.get(provider_id, {})
        if row["state"] == "rotating" and "new" in built and self._rng() < row["share"]:
            return "new", built["new"][0]
        current = built.get("current")
        return "current", current[0] if current else None

    def _follow_config(self, pid: str) -> None:
        """Rebuild the provider's credentialed clients when a reload changed its config
        (base URL, timeouts): they must call where prism.toml now says."""
        try:
            pc = self._config_of().provider(pid)
        except KeyError:
            return   # removed by a reload: the dispatcher has no provider for it either
        built_for = self._built_for.get(pid)
        if pc is built_for or built_for is None:
            return
        if pc == built_for:
            self._built_for[pid] = pc   # an equal config from a reload: nothing to redo
            return
        row, old = self._rows[pid], self._built.get(pid, {})
        self._rows.pop(pid)
        self._built.pop(pid, None)
        counts = self._counts.get(pid)
        self._apply(pid, row)
        for provider, _ in old.values():
            self._retire(provider)
        if counts is not None:
            self._counts[pid] = counts

    def current(self, provider_id: str) -> Any | None:
        current = self._built.get(provider_id, {}).get("current")
        return current[0] if current else None

    def secrets(self, provider_id: str) -> tuple[str, ...]:
        """The credentials in use beside prism.toml's, for redaction."""
        return tuple(secret for _, secret in self._built.get(provider_id, {}).values())

    def record(self, provider_id: str, slot: str, error: BaseException | None) -> None:
        counts = self._counts.setdefault(provider_id, {s: _Counts() for s in SLOTS})[slot]
        counts.requests += 1
        if error is not None:
            counts.errors += 1
            if isinstance(error, errors.UpstreamAuthFailed):
                counts.auth_failures += 1

    async def refused(self, provider_id: str) -> None:
        """The upstream refused the new credential: roll back (once, however many
        calls saw the refusal at the same time)."""
        row = self._rows.get(provider_id)
        if row is None or row["state"] != "rotating":
            return
        with trio.CancelScope(shield=True):
            try:
                await self.rollback(provider_id, actor="auto", reason="upstream refused the "
                                    "new credential (401/403)", expect=row["generation"])
            except (errors.ClientError, RotationConflict):
                pass   # someone else already moved it on
            except Exception:
                log.exception("automatic rollback of provider %s failed", provider_id)

    # ------------------------------------------------------------ state

    async def load(self) -> None:
        """Read every provider's stored state and build what it needs (at start-up and
        when another process announced a step)."""
        async with self._lock:
            rows = await self._writer.call(load_credentials)
            for pid in set(self._rows) | set(rows):
                self._apply(pid, rows.get(pid))

    def _apply(self, pid: str, row: dict[str, Any] | None) -> None:
        old_row, old_built = self._rows.get(pid), self._built.get(pid, {})
        if row == old_row:
            return
        built: dict[str, tuple[Any, str]] = {}
        if row is not None:
            for slot in SLOTS:
                cred = row.get(slot)
                if cred is None or cred["kind"] == "config":
                    continue
                reuse = next((b for s, b in old_built.items()
                              if old_row is not None and old_row.get(s) == cred), None)
                try:
                    built[slot] = reuse if reuse is not None else self._provider_for(pid, cred)
                except (errors.ClientError, SealBroken) as exc:
                    log.error("provider %s: cannot build the %s credential %s: %s", pid,
                              slot, cred["label"], exc)
        for provider, _ in old_built.values():
            if all(provider is not b[0] for b in built.values()):
                self._retire(provider)
        if row is None:
            self._rows.pop(pid, None)
            self._built.pop(pid, None)
        else:
            self._rows[pid], self._built[pid] = row, built
            try:
                self._built_for[pid] = self._config_of().provider(pid)
            except KeyError:
                pass
        if row is None or old_row is None or row.get("started_at") != old_row.get("started_at"):
            self._counts[pid] = {s: _Counts() for s in SLOTS}

    def _provider_config(self, pid: str) -> ProviderConfig:
        try:
            return self._config_of().provider(pid)
        except KeyError:
            raise errors.NotFound(f"no provider {pid!r}") from None

    def _provider_for(self, pid: str, cred: dict[str, Any]) -> tuple[Any, str]:
        pc = self._provider_config(pid)
        if cred["kind"] == "env":
            secret = os.environ.get(cred["ref"], "")
            if not secret:
                raise errors.InvalidRequest(f"environment variable {cred['ref']} is not set",
                                            field="api_key_env")
            return self._build(dataclasses.replace(pc, api_key_env=cred["ref"])), secret
        if self._sealer is None:
            raise errors.InvalidRequest(f"set {SECRET_KEY_ENV} to store credentials sealed",
                                        field="api_key")
        secret = self._sealer.open(cred["sealed"])
        fields = {f.name: getattr(pc, f.name) for f in dataclasses.fields(ProviderConfig)}
        return self._build(CredentialedConfig(**fields, api_key_value=secret)), secret

    def _check(self, cred: dict[str, Any]) -> None:
        if cred["kind"] == "env" and not os.environ.get(cred["ref"], ""):
            raise errors.InvalidRequest(f"environment variable {cred['ref']} is not set on "
                                        "the gateway", field="api_key_env")
        if cred["kind"] == "sealed":
            if self._sealer is None:
                raise errors.InvalidRequest(f"set {SECRET_KEY_ENV} to store credentials "
                                            "sealed", field="api_key")
            self._sealer.open(cred["sealed"])

    def _row(self, pid: str) -> dict[str, Any]:
        return self._rows.get(pid) or {"state": "steady", "generation": 0, "share": 0.0,
                                       "current": {"kind": "config", "ref": None,
                                                   "sealed": None, "label": "prism.toml"},
                                       "new": None, "started_at": None}

    async def _step(self, pid: str, expect: int, state: dict[str, Any], *, actor: str,
                    action: str, detail: dict[str, Any]) -> dict[str, Any]:
        try:
            row = await self._writer.call(step_credentials, pid, expect, state, actor=actor,
                                          action=action, detail=detail)
        except RotationConflict as exc:
            raise RotationStateError(str(exc), code="rotation_conflict") from None
        self._apply(pid, row)
        log.warning("provider %s: %s by %s (%s)", pid, action, actor,
                    ", ".join(f"{k}={v}" for k, v in detail.items()))
        return self.view(pid)

    # ------------------------------------------------------------ operator steps

    def credential(self, *, env: str | None, value: str | None) -> dict[str, Any]:
        """A credential from the operator's input (exactly one of env, value)."""
        if (env is None) == (value is None):
            raise errors.InvalidRequest("give exactly one of api_key_env (an environment "
                                        "variable name) and api_key (a value)", field="api_key_env")
        if env is not None:
            if not _ENV_NAME.match(env):
                raise errors.InvalidRequest("api_key_env: not an environment variable name",
                                            field="api_key_env")
            return {"kind": "env", "ref": env, "sealed": None, "label": f"env:{env}"}
        assert value is not None
        if not value.strip() or len(value) > MAX_SECRET_CHARS:
            raise errors.InvalidRequest(f"api_key: 1..{MAX_SECRET_CHARS} characters",
                                        field="api_key")
        if self._sealer is None:
            raise errors.InvalidRequest(f"api_key: set {SECRET_KEY_ENV} on the gateway to store "
                                        "credentials sealed, or pass api_key_env", field="api_key")
        return {"kind": "sealed", "ref": None, "sealed": self._sealer.seal(value),
                "label": fingerprint(value)}

    async def rotate(self, pid: str, cred: dict[str, Any], share: float, *, actor: str) -> dict:
        self._provider_config(pid)
        if not 0.0 <= share <= 1.0:
            raise errors.InvalidRequest("share: must be between 0 and 1", field="share")
        async with self._lock:
            row = self._row(pid)
            if row["state"] == "rotating":
                raise RotationStateError(
                    f"provider {pid!r} is already rotating: promote or roll back first",
                    code="rotation_in_progress")
            self._check(cred)   # refuse an unusable credential before storing it
            state = {**row, "state": "rotating", "new": cred, "share": share,
                     "started_at": time.time()}
            return await self._step(pid, row["generation"], state, actor=actor,
                                    action="provider.rotation.start",
                                    detail={"new": cred["label"], "share": share})

    async def set_share(self, pid: str, share: float, *, actor: str) -> dict:
        if not 0.0 <= share <= 1.0:
            raise errors.InvalidRequest("share: must be between 0 and 1", field="share")
        async with self._lock:
            row = self._rotating(pid)
            return await self._step(pid, row["generation"], {**row, "share": share}, actor=actor,
                                    action="provider.rotation.share", detail={"share": share})

    def _rotating(self, pid: str) -> dict[str, Any]:
        self._provider_config(pid)
        row = self._row(pid)
        if row["state"] != "rotating":
            raise RotationStateError(f"provider {pid!r} is not rotating",
                                               code="not_rotating")
        return row

    async def promote(self, pid: str, *, actor: str) -> dict:
        async with self._lock:
            row = self._rotating(pid)
            state = {**row, "state": "steady", "current": row["new"], "new": None,
                     "share": 0.0, "started_at": None}
            return await self._step(pid, row["generation"], state, actor=actor,
                                    action="provider.rotation.promote",
                                    detail={"old": row["current"]["label"],
                                            "current": row["new"]["label"]})

    async def rollback(self, pid: str, *, actor: str, reason: str = "operator",
                       expect: int | None = None) -> dict:
        async with self._lock:
            row = self._rotating(pid)
            if expect is not None and row["generation"] != expect:
                raise RotationConflict("moved on")
            state = {**row, "state": "steady", "new": None, "share": 0.0, "started_at": None}
            return await self._step(pid, row["generation"], state, actor=actor,
                                    action="provider.rotation.rollback",
                                    detail={"dropped": row["new"]["label"], "reason": reason})

    # ------------------------------------------------------------ views

    async def history(self, pid: str) -> list[dict[str, Any]]:
        """The audited steps of this provider's rotations."""
        from store.rotation import rotation_history
        return await self._writer.call(rotation_history, pid)

    def view(self, pid: str) -> dict[str, Any]:
        """What an operator sees: never a secret, only labels."""
        pc = self._provider_config(pid)
        row = self._row(pid)
        counts = self._counts.get(pid, {s: _Counts() for s in SLOTS})
        creds = []
        for slot in SLOTS:
            cred = row.get(slot)
            if cred is None:
                continue
            share = (row["share"] if slot == "new" else 1.0 - row["share"]) \
                if row["state"] == "rotating" else (1.0 if slot == "current" else 0.0)
            label = cred["label"] if cred["kind"] != "config" else (
                f"env:{pc.api_key_env}" if pc.api_key_env else "none")
            creds.append({"slot": slot, "source": cred["kind"], "label": label,
                          "share": share, "usable": cred["kind"] == "config" or slot in
                          self._built.get(pid, {}), **counts[slot].as_dict()})
        return {"provider": pid, "state": row["state"], "share": row["share"],
                "generation": row["generation"], "started_at": row["started_at"],
                "credentials": creds}

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Every provider with a stored credential state (for the dashboard)."""
        out = {}
        for pid in list(self._rows):
            try:
                out[pid] = self.view(pid)
            except errors.NotFound:   # removed from the config by a reload
                continue
        return out
