"""Organizations at run time: whose org an account is in, what that org's config
allows, which budgets a request counts against, the org's own providers, and its
budget alerts.

Lookups are cached for `ttl` seconds (like keys and plans): a change made through
this process's admin API applies at once (`invalidate`), one made by another
process within the TTL. Budgets are not cached state: the cached part is only the
limit, and the guard itself runs in the store's admission transaction.

Alerts: each threshold the store reports crossed (once per org, month and threshold:
store.budgets) becomes a log line, an event on the control socket (`alerts` is the
hub's hook) and, when the org has a webhook, a POST signed with HMAC-SHA256 of
"<timestamp>.<body>" under the org's webhook secret, sent through the SSRF guard of
gateway.media.fetch by the `run` task, never on the request path.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import trio

import store
from gateway import errors
from gateway.config import ProviderConfig
from gateway.engine.live import Observers
from gateway.media.fetch import system_resolver, vet
from gateway.orgs.crypto import SecretBox
from gateway.config import RouteConfig
from gateway.orgs.settings import DEFAULT_THRESHOLDS, KeySettings, OrgSecrets
from store import orgs as org_store
from store.budgets import Alert, Budget

log = logging.getLogger("prism.orgs")
_WEBHOOK_QUEUE = 64
_WEBHOOK_TIMEOUT = 10.0


@dataclass(frozen=True)
class OrgProviderConfig(ProviderConfig):
    """A provider's config carrying an org's own credential (providers.base.api_key
    prefers it). repr=False keeps it out of every repr and traceback."""
    secret: str = field(default="", repr=False)


@dataclass(eq=False)
class OrgView:
    id: str
    name: str
    config: dict[str, Any]
    budget_micros: int | None
    budget_hard: bool
    secrets: OrgSecrets
    providers: dict[str, Any] = field(default_factory=dict)   # built on first use

    @property
    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for v in (*self.secrets.credentials.values(),
                                 self.secrets.webhook_secret) if v)

    def limit(self, name: str) -> int | None:
        return self.config.get(name)


def _canonical(config, names) -> frozenset[str]:
    out = set()
    for n in names:
        for m in config.models:
            if n == m.id or n in m.aliases:
                out.add(m.id)
    return frozenset(out)


class Orgs:
    def __init__(self, writer: Any, live: Any, *, box: SecretBox | None = None,
                 ttl: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 build_provider: Callable[[ProviderConfig], Any] | None = None,
                 resolver=system_resolver, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.writer = writer
        self.live = live
        self.box = box or SecretBox.from_env()
        self.ttl = ttl
        self.clock = clock
        self._build = build_provider
        self._resolver = resolver
        self._transport = transport
        self.alerts = Observers()         # the control socket's hub subscribes
        self._account_org: dict[str, tuple[str, float]] = {}
        self._views: dict[str, tuple[OrgView | None, float]] = {}
        self._keys: dict[str, tuple[KeySettings | None, float]] = {}
        self._retired: list[Any] = []
        self._send, self._receive = trio.open_memory_channel[tuple[str, bytes, str]](_WEBHOOK_QUEUE)

    # ------------------------------------------------------------ lookups

    async def org_id(self, account_id: str) -> str:
        hit = self._account_org.get(account_id)
        if hit is not None and hit[1] > self.clock():
            return hit[0]
        org_id = await self.writer.call(org_store.account_org, account_id) or org_store.DEFAULT_ORG
        self._account_org[account_id] = (org_id, self.clock() + self.ttl)
        return org_id

    async def view(self, org_id: str) -> OrgView | None:
        hit = self._views.get(org_id)
        if hit is not None and hit[1] > self.clock():
            return hit[0]
        row = await self.writer.call(org_store.get_org, org_id)
        view = None
        if row is not None:
            view = OrgView(row["id"], row["name"], row["config"], row["budget_micros"],
                           row["budget_hard"], self.box.open(row["secrets_blob"]))
        old = hit[0] if hit is not None else None
        if view is not None and old is not None and old.secrets == view.secrets:
            view.providers = old.providers       # same credentials: keep the clients
        else:
            self._retire(org_id)
        self._views[org_id] = (view, self.clock() + self.ttl)
        return view

    async def for_account(self, account_id: str) -> OrgView | None:
        return await self.view(await self.org_id(account_id))

    async def key_settings(self, key_id: str | None) -> KeySettings | None:
        if not key_id:
            return None
        hit = self._keys.get(key_id)
        if hit is not None and hit[1] > self.clock():
            return hit[0]
        key = await self.writer.call(store.get_key, key_id)
        ks = None
        if key is not None and any(v is not None for v in (
                key.expires_at, key.allowed_models, key.rpm, key.tpm, key.budget_micros)):
            ks = KeySettings(key.expires_at, tuple(json.loads(key.allowed_models or "[]")),
                             key.rpm, key.tpm, key.budget_micros)
        self._keys[key_id] = (ks, self.clock() + self.ttl)
        return ks

    def invalidate(self, *, org_id: str | None = None, key_id: str | None = None,
                   accounts: bool = False) -> None:
        if org_id is not None:
            self._retire(org_id)
            self._views.pop(org_id, None)
        if key_id is not None:
            self._keys.pop(key_id, None)
        if accounts:
            self._account_org.clear()

    def _retire(self, org_id: str) -> None:
        old = self._views.get(org_id)
        if old is not None and old[0] is not None:
            self._retired += old[0].providers.values()
            old[0].providers.clear()

    # ------------------------------------------------------------ the request path

    async def allowed(self, account_id: str, key_id: str | None,
                      plan_models: frozenset[str] | None) -> frozenset[str] | None:
        """The models this caller may use: the plan's, the org's and the key's lists
        intersected (None: any). Refuses an expired key."""
        ks = await self.key_settings(key_id)
        if ks is not None and ks.expires_at is not None and ks.expires_at <= time.time():
            raise errors.AuthenticationError("This API key has expired", code="key_expired")
        org = await self.for_account(account_id)
        allowed = plan_models
        config = self.live.config
        for names in ((org.config.get("models") or ()) if org else (),
                      ks.allowed_models if ks else ()):
            if names:
                ids = _canonical(config, names)
                allowed = ids if allowed is None else allowed & ids
        return allowed

    @staticmethod
    def check_mode(org: OrgView | None, mode: str | None) -> None:
        modes = org.config.get("modes") if org is not None else None
        if modes and mode is not None and mode not in modes:
            raise errors.PlanRestricted(
                f"Your organization does not allow mode {mode!r} (allowed: {', '.join(modes)})",
                code="mode_not_allowed")

    @staticmethod
    def budgets(org: OrgView | None, key_id: str | None,
                ks: KeySettings | None) -> tuple[Budget, ...]:
        out = []
        if ks is not None and ks.budget_micros is not None and key_id:
            out.append(Budget("key", key_id, ks.budget_micros, True))
        if org is not None and org.budget_micros is not None:
            out.append(Budget("org", org.id, org.budget_micros, org.budget_hard))
        return tuple(out)

    def routed(self, org: OrgView | None, selection: Any) -> Any:
        """The selection with the org's own routes for its model, when the org config
        overrides them (providers disabled here are skipped like prism.toml's; none
        left: the default routes)."""
        overrides = org.config.get("routes") if org is not None else None
        if not overrides or selection is None:
            return selection
        model = selection.entry.model
        for o in overrides:
            if o["model"] == model.id or o["model"] in model.aliases:
                own = dataclasses.replace(model, routes=tuple(
                    RouteConfig(r["provider"], r["model"]) for r in o["routes"]))
                routes = self.live.catalog.routes(own)
                if routes:
                    return dataclasses.replace(selection, routes=routes)
        return selection

    def provider(self, org: OrgView, provider_id: str) -> Any | None:
        """The org's own instance of a provider, using its credential; None when the
        org brings no credential for it."""
        secret = org.secrets.credentials.get(provider_id)
        if not secret:
            return None
        built = org.providers.get(provider_id)
        if built is None:
            try:
                pc = self.live.config.provider(provider_id)
            except KeyError:
                return None
            fields = {f.name: getattr(pc, f.name) for f in dataclasses.fields(pc)}
            cfg = OrgProviderConfig(**fields, secret=secret)
            if self._build is None:
                from gateway.providers import build_provider
                self._build = build_provider
            built = org.providers[provider_id] = self._build(cfg)
        return built

    # ------------------------------------------------------------ alerts

    async def _crossed(self, alerts: tuple[Alert, ...]) -> list[tuple[Alert, int]]:
        """Each (alert, threshold) of the org's thresholds (default 50/80/100) that
        lies in the percent range the store handed this close."""
        out = []
        for a in alerts:
            org = await self.view(a.owner)
            ths = (org.config.get("alert_thresholds") if org is not None else None) \
                or DEFAULT_THRESHOLDS
            out += [(a, t) for t in ths if a.from_percent < t <= a.threshold]
        return out

    async def alert(self, alerts: tuple[Alert, ...]) -> None:
        for a, t in await self._crossed(alerts):
            org = await self.view(a.owner)
            record = {"event": "org_budget_alert", "org_id": a.owner, "period": a.period,
                      "threshold_percent": t, "spent_micros": a.spent_micros,
                      "limit_micros": a.limit_micros,
                      "budget_mode": "hard" if org is None or org.budget_hard else "soft"}
            log.warning("org %s budget alert: %d%% of %d micro-USD reached in %s "
                        "(spent %d, %s limit)", a.owner, t, a.limit_micros,
                        a.period, a.spent_micros, record["budget_mode"])
            self.alerts(record)
            url = org.config.get("webhook_url") if org is not None else None
            if url:
                body = json.dumps(record, sort_keys=True).encode()
                try:
                    self._send.send_nowait((url, body, org.secrets.webhook_secret))
                except trio.WouldBlock:
                    log.warning("org %s webhook queue full; alert not delivered", a.owner)

    async def _deliver(self, url: str, body: bytes, secret: str) -> None:
        ts = str(int(time.time()))
        headers = {"content-type": "application/json", "x-prism-timestamp": ts}
        if secret:
            mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256)
            headers["x-prism-signature"] = "sha256=" + mac.hexdigest()
        allow = self.live.config.media.allow_private_hosts
        with trio.move_on_after(_WEBHOOK_TIMEOUT):
            try:
                target, _ip, host = await vet(url, self._resolver, allow)
            except errors.InvalidRequest as exc:
                log.warning("webhook %s refused by the SSRF guard: %s", url, exc.message)
                return
            headers["host"] = host if target.port in (None, 80, 443) else f"{host}:{target.port}"
            ext = {"sni_hostname": host} if target.scheme == "https" else {}
            async with httpx.AsyncClient(transport=self._transport, trust_env=False,
                                         follow_redirects=False, timeout=_WEBHOOK_TIMEOUT) as c:
                try:
                    req = c.build_request("POST", target, content=body, headers=headers,
                                          extensions=ext)
                    resp = await c.send(req)
                    if resp.status_code >= 300:
                        log.warning("webhook %s answered %d", url, resp.status_code)
                except httpx.HTTPError as exc:
                    log.warning("webhook %s failed: %s", url, type(exc).__name__)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Deliver webhooks; at the end, close every org provider this built."""
        try:
            task_status.started()
            async for url, body, secret in self._receive:
                await self._deliver(url, body, secret)
        finally:
            with trio.CancelScope(shield=True):
                for view, _ in self._views.values():
                    if view is not None:
                        self._retired += view.providers.values()
                for p in self._retired:
                    await p.aclose()
