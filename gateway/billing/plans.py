"""What an account's plan allows, before any money moves.

`check_request` is pure: a plan and the facts of one request in, a 403 out when the
plan forbids it (model, mode, streaming, max_tokens, session length). Free plans say
`free_tier_limit` and name the limit in `code`; other plans say `plan_restricted`.
`rate_limits` resolves the per-key and per-account GCRA limits (plan value, else the
[limits] default; 0 = none). `AccountPlans` caches which plan each account is on.

Session length is counted by routing (gateway.engine.sessions): it puts the number of
messages the session already holds, before this request, in
``Request.metadata["prism_session_messages"]`` (a ``session_messages`` attribute on
the Selection is read too). A request is refused when its own message would take the
session past the plan's `session_messages`. Without either, the limit does not apply.
"""
from __future__ import annotations

import time
from typing import Any, Awaitable, Callable

from gateway import errors
from gateway.billing.ratelimit import Limit
from gateway.config import Config, LimitsConfig, PlanConfig

SESSION_METADATA_KEY = "prism_session_messages"


def find_plan(config: Config, plan_id: str | None) -> PlanConfig | None:
    if plan_id is None:
        return None
    for plan in config.plans:
        if plan.id == plan_id:
            return plan
    return None   # a plan removed from prism.toml: its accounts pay from the wallet


def _refuse(plan: PlanConfig, code: str, message: str) -> errors.PermissionDenied:
    if plan.free:
        return errors.FreeTierLimit(f"Free tier limit ({code}): {message}", code=code)
    return errors.PlanRestricted(f"Plan {plan.id!r}: {message}", code=code)


def allowed_models(config: Config, plan: PlanConfig) -> frozenset[str]:
    """The canonical model ids a plan lists (it may name them by alias)."""
    names = set(plan.models)
    return frozenset(m.id for m in config.models if m.id in names or names & set(m.aliases))


def session_messages(req: Any, selection: Any) -> int | None:
    count = getattr(selection, "session_messages", None)
    if count is None:
        count = (getattr(req, "metadata", None) or {}).get(SESSION_METADATA_KEY)
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def check_request(config: Config, plan: PlanConfig, *, model_id: str, mode: str | None,
                  stream: bool, max_tokens: int | None, session_count: int | None) -> None:
    """Raise the 403 for the first thing the plan does not allow."""
    if plan.models and model_id not in allowed_models(config, plan):
        raise _refuse(plan, "model_not_allowed",
                      f"the model {model_id!r} is not included; available: "
                      f"{', '.join(sorted(allowed_models(config, plan)))}")
    # A request routed without a mode (no X-Prism-Mode, or routing that predates modes)
    # is not refused for its mode.
    if plan.modes and mode is not None and mode not in plan.modes:
        hint = "; the other modes need a paid plan" if plan.free else ""
        raise _refuse(plan, "mode_not_allowed", f"mode {mode!r} is not included (allowed: "
                                                f"{', '.join(plan.modes)}){hint}")
    if stream and not plan.streaming:
        raise _refuse(plan, "streaming", "streaming is not available; send the request "
                                         "without \"stream\": true")
    if plan.max_tokens is not None and max_tokens is not None and max_tokens > plan.max_tokens:
        raise _refuse(plan, "max_tokens", f"max_tokens is {max_tokens}; it cannot exceed "
                                          f"{plan.max_tokens}")
    if plan.session_messages is not None and session_count is not None \
            and session_count + 1 > plan.session_messages:
        raise _refuse(plan, "session_messages",
                      f"a session holds at most {plan.session_messages} messages; start a new "
                      "session (another X-Prism-Session id)")


def _burst(rate: int, limits: LimitsConfig) -> int:
    return max(1, round(rate * limits.burst_seconds / 60.0))


def rate_limits(config: Config, plan: PlanConfig | None) -> dict[str, Limit]:
    """The limits that apply, by name: key-rpm, key-tpm, account-rpm, account-tpm."""
    out: dict[str, Limit] = {}
    for field, unit in (("key_rpm", "requests"), ("key_tpm", "tokens"),
                        ("account_rpm", "requests"), ("account_tpm", "tokens")):
        rate = getattr(plan, field, None) if plan is not None else None
        if rate is None:
            rate = getattr(config.limits, field)
        if rate:
            name = field.replace("_", "-")
            out[name] = Limit(name, rate, _burst(rate, config.limits), 60, unit)
    return out


class AccountPlans:
    """account id -> plan id, cached for `ttl` seconds (plans change rarely and only by
    an operator); a miss costs one read through the store writer."""

    def __init__(self, lookup: Callable[[str], Awaitable[str | None]], *, ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[str | None, float]] = {}

    async def plan_id(self, account_id: str) -> str | None:
        hit = self._entries.get(account_id)
        now = self._clock()
        if hit is not None and hit[1] > now:
            return hit[0]
        plan_id = await self._lookup(account_id)
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[account_id] = (plan_id, now + self._ttl)
        return plan_id

    def invalidate(self, account_id: str) -> None:
        self._entries.pop(account_id, None)
