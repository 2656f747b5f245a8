"""What an organization's config and a key's settings may say, validated the way
prism.toml is (gateway.config's table-driven shapes), with every problem naming its
field (`orgs[2].budget_usd: must not be negative`). Pure: no I/O.

Credentials and the webhook secret are write-only: they arrive here in plain text,
leave as `OrgSecrets` for gateway.orgs.crypto to encrypt, and no function here (or
anywhere) turns them back into JSON for a response.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.config import MODES, Config, ConfigError, RouteConfig, _build

BUDGET_MODES = ("hard", "soft")
MAX_SECRET = 4096
MAX_NAME = 200
MAX_METADATA_BYTES = 8192
MAX_ROUTE_OVERRIDES = 200
MAX_ROUTES_PER_MODEL = 8
DEFAULT_THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True)
class OrgRoutes:
    """An org's own ordered routes for one public model (its id or an alias)."""
    model: str
    routes: tuple[RouteConfig, ...]


@dataclass(frozen=True)
class OrgConfig:
    """One org's settings. Empty lists mean "no restriction"; unset limits fall back to
    the plan's and [limits]'s."""
    name: str = ""
    models: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    # provider id -> its API key, used instead of the gateway's for this org's requests.
    credentials: dict[str, str] = field(default_factory=dict)
    key_rpm: int | None = None
    key_tpm: int | None = None
    account_rpm: int | None = None
    account_tpm: int | None = None
    budget_usd: float | None = None        # per calendar month (UTC)
    budget_mode: str = "hard"              # hard: refuse past it; soft: alert only
    # Percent of the budget at which an alert fires, ascending, each 1..100.
    alert_thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    # Per model, routes used instead of prism.toml's for this org's chat requests.
    routes: tuple[OrgRoutes, ...] = ()
    webhook_url: str = ""
    webhook_secret: str = ""


@dataclass(frozen=True)
class OrgSecrets:
    credentials: dict[str, str]
    webhook_secret: str

    def __repr__(self) -> str:   # never in a traceback or a log line
        return f"OrgSecrets(providers={sorted(self.credentials)}, webhook_secret=***)"


def _org_problems(cfg: OrgConfig, config: Config, where: str) -> list[str]:
    problems: list[str] = []
    known_models = {m.id for m in config.models} | {a for m in config.models for a in m.aliases}
    for i, m in enumerate(cfg.models):
        if m not in known_models:
            problems.append(f"{where}.models[{i}]: unknown model {m!r}")
    for i, m in enumerate(cfg.modes):
        if m not in MODES:
            problems.append(f"{where}.modes[{i}]: {m!r} is not one of {', '.join(MODES)}")
    providers = {p.id for p in config.providers}
    for pid, secret in cfg.credentials.items():
        if pid not in providers:
            problems.append(f"{where}.credentials.{pid}: unknown provider {pid!r}")
        elif not secret or len(secret) > MAX_SECRET:
            problems.append(f"{where}.credentials.{pid}: must be 1..{MAX_SECRET} characters")
    for name in ("key_rpm", "key_tpm", "account_rpm", "account_tpm"):
        v = getattr(cfg, name)
        if v is not None and not 0 < v <= 10**9:
            problems.append(f"{where}.{name}: must be between 1 and 1000000000")
    if cfg.budget_usd is not None and not 0 <= cfg.budget_usd <= 10**9:
        problems.append(f"{where}.budget_usd: must be between 0 and 1000000000")
    if cfg.budget_mode not in BUDGET_MODES:
        problems.append(f"{where}.budget_mode: {cfg.budget_mode!r} is not one of hard, soft")
    if cfg.webhook_url and (not cfg.webhook_url.startswith(("http://", "https://"))
                            or len(cfg.webhook_url) > 2048):
        problems.append(f"{where}.webhook_url: must be an http(s) URL of at most 2048 characters")
    if cfg.webhook_secret and not cfg.webhook_url:
        problems.append(f"{where}.webhook_secret: needs webhook_url")
    if len(cfg.name) > MAX_NAME:
        problems.append(f"{where}.name: at most {MAX_NAME} characters")
    th = cfg.alert_thresholds
    if not 1 <= len(th) <= 10:
        problems.append(f"{where}.alert_thresholds: give 1..10 percentages")
    for i, t in enumerate(th):
        if not 1 <= t <= 100:
            problems.append(f"{where}.alert_thresholds[{i}]: must be between 1 and 100")
        elif i and t <= th[i - 1]:
            problems.append(f"{where}.alert_thresholds[{i}]: must be above {th[i - 1]} (ascending)")
    problems += _route_problems(cfg, config, where)
    return problems


def _route_problems(cfg: OrgConfig, config: Config, where: str) -> list[str]:
    """Each override names a known model once, and 1..8 routes through configured
    providers, like prism.toml's [[models]] routes."""
    problems: list[str] = []
    if len(cfg.routes) > MAX_ROUTE_OVERRIDES:
        return [f"{where}.routes: at most {MAX_ROUTE_OVERRIDES} models"]
    canonical = {n: m.id for m in config.models for n in (m.id, *m.aliases)}
    providers = {p.id for p in config.providers}
    seen: dict[str, int] = {}
    for i, o in enumerate(cfg.routes):
        at = f"{where}.routes[{i}]"
        model_id = canonical.get(o.model)
        if model_id is None:
            problems.append(f"{at}.model: unknown model {o.model!r}")
        elif model_id in seen:
            problems.append(f"{at}.model: {o.model!r} already overridden by routes[{seen[model_id]}]")
        else:
            seen[model_id] = i
        if not 1 <= len(o.routes) <= MAX_ROUTES_PER_MODEL:
            problems.append(f"{at}.routes: give 1..{MAX_ROUTES_PER_MODEL} routes")
        for j, r in enumerate(o.routes):
            if r.provider not in providers:
                problems.append(f"{at}.routes[{j}].provider: unknown provider {r.provider!r}")
            if not r.model or len(r.model) > MAX_NAME:
                problems.append(f"{at}.routes[{j}].model: must be 1..{MAX_NAME} characters")
    return problems


def parse_org(body: Any, config: Config, where: str) -> tuple[OrgConfig | None, list[str]]:
    """(config, problems): problems name each field under `where`."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return None, [f"{where}: expected an object"]
    cfg = _build(OrgConfig, body, where, problems)
    if cfg is None or problems:
        return None, problems or [f"{where}: invalid"]
    return cfg, _org_problems(cfg, config, where)


def split_secrets(cfg: OrgConfig) -> tuple[dict[str, Any], OrgSecrets]:
    """The storable settings (no secrets: which providers have a credential, and
    whether there is a webhook secret, are all they say) and the secrets."""
    plain = {k: v for k, v in dataclasses.asdict(cfg).items()
             if k not in ("credentials", "webhook_secret")}
    plain["models"], plain["modes"] = list(cfg.models), list(cfg.modes)
    plain["alert_thresholds"] = list(cfg.alert_thresholds)
    plain["routes"] = [{"model": o.model, "routes": [{"provider": r.provider, "model": r.model}
                                                     for r in o.routes]} for o in cfg.routes]
    plain["credential_providers"] = sorted(cfg.credentials)
    plain["webhook_signed"] = bool(cfg.webhook_secret)
    return plain, OrgSecrets(dict(cfg.credentials), cfg.webhook_secret)


def budget_micros(cfg: dict[str, Any]) -> int | None:
    usd = cfg.get("budget_usd")
    return None if usd is None else round(usd * 1_000_000)


def raise_problems(problems: list[str]) -> None:
    """Validation problems as one 400 that names the first field and lists them all."""
    if problems:
        first = problems[0].split(":", 1)[0]
        raise errors.InvalidRequest("; ".join(problems), field=first, code="invalid_config")


# ---------------------------------------------------------------- keys

@dataclass(frozen=True)
class KeySettings:
    expires_at: float | None = None
    allowed_models: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    budget_micros: int | None = None


_KEY_FIELDS = ("name", "expires_at", "allowed_models", "rpm", "tpm", "budget_usd", "metadata")


def parse_key_update(body: dict, config: Config) -> dict[str, Any]:
    """The columns a PUT /-/keys/{id} body sets (absent: unchanged; null: cleared)."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    for k in body:
        if k not in _KEY_FIELDS:
            problems.append(f"{k}: unknown field (allowed: {', '.join(_KEY_FIELDS)})")
    known = {m.id for m in config.models} | {a for m in config.models for a in m.aliases}

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if "name" in body:
        v = body["name"]
        if not isinstance(v, str) or not v.strip() or len(v) > MAX_NAME:
            problems.append(f"name: must be 1..{MAX_NAME} characters")
        out["name"] = v
    if "expires_at" in body:
        v = body["expires_at"]
        if v is not None and (not number(v) or v <= 0):
            problems.append("expires_at: must be unix seconds or null")
        out["expires_at"] = None if v is None else float(v) if number(v) else None
    if "allowed_models" in body:
        v = body["allowed_models"]
        if v is not None and (not isinstance(v, list) or len(v) > 200
                              or not all(isinstance(m, str) for m in v)):
            problems.append("allowed_models: must be a list of model ids or null")
        else:
            for i, m in enumerate(v or []):
                if m not in known:
                    problems.append(f"allowed_models[{i}]: unknown model {m!r}")
        out["allowed_models"] = v
    for name in ("rpm", "tpm"):
        if name in body:
            v = body[name]
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                                  or not 0 < v <= 10**9):
                problems.append(f"{name}: must be a positive integer or null")
            out[name] = v
    if "budget_usd" in body:
        v = body["budget_usd"]
        if v is not None and (not number(v) or not 0 <= v <= 10**9):
            problems.append("budget_usd: must be between 0 and 1000000000 or null")
        out["budget_micros"] = None if v is None or not number(v) else round(v * 1_000_000)
    if "metadata" in body:
        v = body["metadata"]
        if v is not None and (not isinstance(v, dict)
                              or len(json.dumps(v)) > MAX_METADATA_BYTES):
            problems.append(f"metadata: must be an object of at most {MAX_METADATA_BYTES} bytes")
        out["metadata"] = v
    raise_problems(problems)
    return out


def key_settings_json(key: Any) -> dict[str, Any]:
    """A key row's settings as the admin API shows them."""
    budget = getattr(key, "budget_micros", None)
    return {"expires_at": getattr(key, "expires_at", None),
            "allowed_models": json.loads(key.allowed_models) if getattr(key, "allowed_models", None) else None,
            "rpm": getattr(key, "rpm", None), "tpm": getattr(key, "tpm", None),
            "budget_usd": None if budget is None else format_usd(budget),
            "budget_micros": budget,
            "metadata": json.loads(key.metadata) if getattr(key, "metadata", None) else None}


__all__ = ["OrgConfig", "OrgRoutes", "DEFAULT_THRESHOLDS", "OrgSecrets", "KeySettings", "parse_org", "split_secrets",
           "budget_micros", "raise_problems", "parse_key_update", "ConfigError"]
