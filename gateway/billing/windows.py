"""Which quota windows a plan has at a given moment, and their boundaries (pure).

A window is a span of admission times whose holds count against a limit:

    rolling '5h' / '7d'  a hold created at c counts while now < c + length, i.e. for
                         every now with c > now - length; its share frees at c + length
    'daily'              the period [start, start + 1 day) where start is the latest
                         daily_reset_hour:00 UTC at or before now; everything frees at
                         the period's end

A hold counts in the windows of its *creation* time whatever its state, so a long
stream admitted just before a boundary is billed to the period that admitted it.
The store sums holds per window (store.quota); this module only says where the
boundaries are. Limits are integers: micro-USD and tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

from gateway.billing.pricing import usd_to_micros
from gateway.config import PlanConfig

HOUR = 3600.0
DAY = 86400.0
ROLLING = (("5h", 5 * HOUR, "window_5h_usd"), ("7d", 7 * DAY, "window_7d_usd"))


@dataclass(frozen=True)
class WindowSpec:
    name: str                    # '5h', '7d' or 'daily'
    start: float                 # holds created after (rolling) / at or after (daily) count
    inclusive: bool              # daily periods include their start instant
    length: float                # seconds the window spans
    end: float | None            # daily: when the period resets; rolling: None
    limit_micros: int | None = None
    limit_input: int | None = None
    limit_output: int | None = None

    def __post_init__(self) -> None:
        if self.length <= 0:
            raise ValueError("a window needs a positive length")
        for name in ("limit_micros", "limit_input", "limit_output"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"WindowSpec.{name} must be a non-negative int or None")

    def counts(self, created_at: float) -> bool:
        return created_at >= self.start if self.inclusive else created_at > self.start

    def frees_at(self, created_at: float) -> float:
        """When a hold created at `created_at` stops counting in this window."""
        return self.end if self.end is not None else created_at + self.length

    @property
    def limited(self) -> bool:
        return (self.limit_micros, self.limit_input, self.limit_output) != (None, None, None)


def daily_start(now: float, reset_hour: int) -> float:
    """The latest reset_hour:00 UTC at or before `now` (unix seconds)."""
    if not 0 <= reset_hour <= 23:
        raise ValueError("reset_hour must be 0..23")
    offset = reset_hour * HOUR
    return (now - offset) // DAY * DAY + offset


def plan_windows(plan: PlanConfig, now: float) -> tuple[WindowSpec, ...]:
    """The plan's windows as of `now`, each with its limits; empty for a plan that
    limits nothing (its requests go straight to the wallet)."""
    out: list[WindowSpec] = []
    for name, length, attr in ROLLING:
        usd = getattr(plan, attr)
        if usd is not None:
            out.append(WindowSpec(name, now - length, False, length, None,
                                  limit_micros=usd_to_micros(usd)))
    if (plan.daily_usd, plan.daily_input_tokens, plan.daily_output_tokens) != (None, None, None):
        start = daily_start(now, plan.daily_reset_hour)
        out.append(WindowSpec(
            "daily", start, True, DAY, start + DAY,
            limit_micros=None if plan.daily_usd is None else usd_to_micros(plan.daily_usd),
            limit_input=plan.daily_input_tokens, limit_output=plan.daily_output_tokens))
    return tuple(out)
