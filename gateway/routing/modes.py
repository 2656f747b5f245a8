"""Modes: which model `model: "any"` gets for a task type in eco, balanced or sport (pure).

Every model has a tier in prism.toml (eco < balanced < sport: how capable it is, not
what it costs). A mode is a rule with two parts:

- a quality floor per task type: the lowest tier allowed to answer that kind of task;
- a pick among the models that clear it: ``cheapest`` (lowest blended price) or
  ``best`` (highest tier, then the cheaper of equals).

Built-in rules (prism.toml's [routing.<mode>] tables may override any key):

    mode      pick      simple    code      reasoning  complex
    eco       cheapest  eco       eco       balanced   balanced
    balanced  cheapest  eco       balanced  balanced   sport
    sport     best      -         -         -          -   (the floor does not matter)

So eco is the cheapest model that clears the task's floor; balanced ("best value")
pays for the tier a task usually needs and no more; sport takes the best model there
is. When no eligible model clears a floor the most capable eligible one answers:
a mode never buys a worse answer than the catalog can give. Ties keep config order.

The blended price weights input three times output, the shape of a typical chat call,
so a model cheap on input but dear on output is not mistaken for a bargain.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping, Sequence

from gateway.config import MODES, TASK_TYPES, TIERS, RoutingConfig

if TYPE_CHECKING:   # the catalog builds its rules from here, so no runtime import back
    from gateway.routing.catalog import Entry

__all__ = ["ModeRule", "DEFAULT_RULES", "TIER_RANK", "rules_from", "choose", "blended_price"]

TIER_RANK: Mapping[str, int] = MappingProxyType({t: i for i, t in enumerate(TIERS, 1)})


@dataclass(frozen=True)
class ModeRule:
    pick: str
    simple: str
    code: str
    reasoning: str
    complex: str

    def __post_init__(self) -> None:
        if self.pick not in ("cheapest", "best"):
            raise ValueError(f"unknown pick {self.pick!r}")
        for task in TASK_TYPES:
            if getattr(self, task) not in TIERS:
                raise ValueError(f"{task}: unknown tier {getattr(self, task)!r}")

    def floor(self, task: str) -> str:
        return getattr(self, task)


DEFAULT_RULES: Mapping[str, ModeRule] = MappingProxyType({
    "eco": ModeRule("cheapest", "eco", "eco", "balanced", "balanced"),
    "balanced": ModeRule("cheapest", "eco", "balanced", "balanced", "sport"),
    "sport": ModeRule("best", "sport", "sport", "sport", "sport"),
})


def rules_from(cfg: RoutingConfig) -> Mapping[str, ModeRule]:
    """The built-in rules with the file's non-empty keys laid over them."""
    out = {}
    for mode in MODES:
        base, over = DEFAULT_RULES[mode], getattr(cfg, mode)
        out[mode] = ModeRule(*(getattr(over, k) or getattr(base, k)
                               for k in ("pick", *TASK_TYPES)))
    return MappingProxyType(out)


def blended_price(e: Entry) -> int:
    """Pico-USD for 3 input + 1 output token (callers filter out unpriced models)."""
    if e.price is None:
        raise ValueError(f"model {e.model.id!r} has no token price to compare")
    return 3 * e.price.input_pico + e.price.output_pico


def choose(rule: ModeRule, task: str, candidates: Sequence[Entry]) -> tuple[Entry, str]:
    """The model for ``task`` under ``rule`` and a short reason; candidates are the
    eligible models in config order (non-empty)."""
    if not candidates:
        raise ValueError("choose needs at least one candidate")
    floor = rule.floor(task)
    order = {id(e): i for i, e in enumerate(candidates)}

    def best_key(e: Entry) -> tuple:
        return (-TIER_RANK[e.model.tier], blended_price(e), order[id(e)])

    if rule.pick == "best":
        return min(candidates, key=best_key), "best tier available"
    clearing = [e for e in candidates if TIER_RANK[e.model.tier] >= TIER_RANK[floor]]
    if not clearing:
        return min(candidates, key=best_key), f"nothing clears the {floor} floor: best available"
    pick = min(clearing, key=lambda e: (blended_price(e), order[id(e)]))
    return pick, f"cheapest at or above the {floor} floor"
