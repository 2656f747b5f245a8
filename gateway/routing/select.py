"""Which model serves a request, and through which routes in which order (pure).

select() turns the client's model name, mode and pin into a Selection: the catalog
entry, its enabled routes in failover order, the task type, and what the response
headers should say about the choice. Three ways in, first match wins:

    X-Prism-Model-Prefer: <id or alias>   that model (unknown: 404; outside the plan: 403)
    model "any" / "auto" + a mode         routing/modes picks by mode and task type
    any other model name                  that model, or model_not_found

A pin overrides the body's model but not the mode: "any" still needs one, because
the mode is also what the caller pays for. Refusals that need no upstream call happen
here: unknown or disabled model, missing mode, a model the caller's plan excludes,
missing capability, no price, max_tokens above the model's cap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet

from gateway import canonical as c
from gateway import errors
from gateway.codecs.hosted import dropped_by, hosted_tools
from gateway.config import MODES, RouteConfig
from gateway.routing.catalog import Catalog, Entry
from gateway.routing.classify import classify
from gateway.routing.modes import choose

AUTO_MODELS = frozenset({"any", "auto"})

# Rough characters per token for the context-window filter; the real count comes later.
_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Selection:
    entry: Entry
    routes: tuple[RouteConfig, ...]
    task_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    mode: str | None = None              # eco | balanced | sport, when the caller gave one
    pinned: bool = False                 # chosen by X-Prism-Model-Prefer
    reason: str = ""                     # why this model, for logs and the dashboard
    signals: tuple[str, ...] = ()        # what the classifier saw
    by_mode: bool = False                # model "any"/"auto": the mode's markup applies

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValueError("a Selection needs at least one route")


def _needs(req: c.Request, capability: str) -> tuple[str, ...]:
    """Capabilities a model must list to be picked for this request by smart routing."""
    needs = [capability]
    if req.tools and (req.tool_choice is None or req.tool_choice.mode != "none"):
        needs.append("tools")
    if any(isinstance(p, c.ImagePart) for m in req.messages for p in m.parts):
        needs.append("vision")
    if req.response_format is not None and req.response_format.kind != "text":
        needs.append("json")
    return tuple(needs)


def _prompt_chars(req: c.Request) -> int:
    return sum(len(p.text) for m in req.messages for p in m.parts if isinstance(p, c.TextPart))


def check_allowed(entry: Entry, allowed: AbstractSet[str] | None, how: str) -> None:
    if allowed is not None and entry.model.id not in allowed:
        raise errors.PlanRestricted(
            f"{how} {entry.public_id!r} is not included in your plan", code="model_not_allowed")


def _auto(catalog: Catalog, req: c.Request, capability: str, mode: str, task: str,
          allowed: AbstractSet[str] | None) -> tuple[Entry, str]:
    needs = _needs(req, capability)
    est_tokens = _prompt_chars(req) // _CHARS_PER_TOKEN + (req.max_tokens or 0)
    pool = [e for e in catalog.models()
            if e.price is not None and all(n in e.model.capabilities for n in needs)
            and (req.max_tokens is None or req.max_tokens <= e.model.max_output_tokens)
            and est_tokens <= e.model.context_window]
    if allowed is not None:
        permitted = [e for e in pool if e.model.id in allowed]
        if pool and not permitted:
            raise errors.PlanRestricted(
                "None of the models your plan includes can serve this request",
                code="model_not_allowed")
        pool = permitted
    if not pool:
        raise errors.InvalidRequest(
            f"No available model can serve this request (it needs {', '.join(needs)}"
            f"{f' and max_tokens {req.max_tokens}' if req.max_tokens else ''})", field="model")
    if hosted_tools(req):
        # Smart routing prefers a model with a route that runs the hosted tools itself.
        keeping = [e for e in pool if any(
            not dropped_by(req, catalog.provider_kind(r) or "") for r in catalog.routes(e.model))]
        pool = keeping or pool
    entry, why = choose(catalog.rules[mode], task, pool)
    return entry, f"{mode}/{task}: {why}"


def select(catalog: Catalog, req: c.Request, capability: str = "chat", *,
           mode: str | None = None, prefer: str | None = None,
           allowed: AbstractSet[str] | None = None) -> Selection:
    """``mode`` and ``prefer`` come from the X-Prism-Mode and X-Prism-Model-Prefer
    headers (the mode may be the account's default); ``allowed`` is the set of model
    ids the caller's plan permits, None for no restriction."""
    if mode is not None and mode not in MODES:
        raise errors.InvalidRequest(f"X-Prism-Mode must be one of {', '.join(MODES)}, "
                                    f"not {mode!r}", field="X-Prism-Mode")
    task = classify(req)
    auto = req.model in AUTO_MODELS
    if auto and mode is None:
        raise errors.MissingModeHeader(
            f"model {req.model!r} routes by mode: send X-Prism-Mode: eco, balanced or sport "
            f"(or name a model)")
    if prefer:
        entry = catalog.resolve_pin(prefer)
        check_allowed(entry, allowed, "The pinned model")
        reason = "pinned by X-Prism-Model-Prefer"
    elif auto:
        entry, reason = _auto(catalog, req, capability, mode, task.label, allowed)
    else:
        entry = catalog.resolve(req.model)
        check_allowed(entry, allowed, "The model")
        reason = "named by the client"
    model = entry.model
    if capability not in model.capabilities:
        raise errors.InvalidRequest(f"The model {entry.public_id!r} does not support {capability}",
                                    field="model")
    if entry.price is None:
        raise errors.PriceMissing(f"The model {entry.public_id!r} has no token price configured; "
                                  f"the gateway refuses to serve it unbilled", code="price_missing")
    if req.max_tokens is not None and req.max_tokens > model.max_output_tokens:
        raise errors.InvalidRequest(
            f"max_tokens is {req.max_tokens}, above the model's output limit of "
            f"{model.max_output_tokens}", field="max_tokens")
    return Selection(entry, catalog.routes(model), task_type=task.label,
                     headers={"X-Prism-Task-Type": task.label}, mode=mode,
                     pinned=bool(prefer), reason=reason, signals=task.signals, by_mode=auto)
