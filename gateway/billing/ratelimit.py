"""Rate limits by GCRA, exact within one process (pure: no I/O, injectable clock).

The generic cell rate algorithm keeps one number per limited thing, its theoretical
arrival time (TAT): when the bucket would be empty again if nothing else arrived.
A request of cost c at time t moves it to max(TAT, t) + c*T (T = period / rate) and
is admitted only if that is no further than burst*T ahead of t. Over any span of E
seconds at most burst + rate*E/period units are admitted, with no timer and no
per-request memory.

Everything is integer: time is nanoseconds from the clock (time.monotonic_ns by
default), and TATs are kept multiplied by the rate, so T = period/rate never has to
be rounded. Several limits are checked together and charged only if all admit
(`acquire`), so a request refused by one limit does not use up another.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

NS = 1_000_000_000
_PRUNE_EVERY = 4096


@dataclass(frozen=True)
class Limit:
    """`rate` units per `period_s` seconds, with room for `burst` units at once."""
    name: str          # what headers and messages call it, e.g. 'key-rpm'
    rate: int
    burst: int
    period_s: int = 60
    unit: str = "requests"

    def __post_init__(self) -> None:
        for field in ("rate", "burst", "period_s"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Limit.{field} must be a positive int, got {v!r}")

    @property
    def period_ns(self) -> int:
        return self.period_s * NS


@dataclass(frozen=True)
class State:
    """One limit's standing after a decision, for the RateLimit headers."""
    limit: Limit
    remaining: int        # units that could still be admitted right now
    reset_s: float        # seconds until the bucket is fully replenished


@dataclass(frozen=True)
class Decision:
    allowed: bool
    states: tuple[State, ...]
    retry_after_s: float | None = None   # refused: when to retry; None if never (cost > burst)
    refused_by: Limit | None = None

    def tightest(self) -> State | None:
        """The state closest to exhaustion (lowest remaining share of its burst)."""
        if not self.states:
            return None
        return min(self.states, key=lambda s: (s.remaining * 1_000_000 // s.limit.burst,
                                               -s.reset_s))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class GCRA:
    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        # (key, rate, period) -> TAT * rate, in ns*rate. The rate is part of the key so a
        # reload that changes a limit starts that limit afresh instead of misreading it.
        self._tat: dict[tuple, int] = {}
        self._ops = 0

    def __len__(self) -> int:
        return len(self._tat)

    def acquire(self, items: Sequence[tuple[Hashable, Limit, int]],
                now_ns: int | None = None) -> Decision:
        """Admit a request costing `cost` units of each (key, limit, cost) item, all or
        nothing. Zero-cost items only report their state."""
        now = self._clock() if now_ns is None else now_ns
        planned: list[tuple[tuple, int]] = []
        states: list[State] = []
        worst: tuple[float | None, Limit] | None = None
        for key, limit, cost in items:
            if cost < 0:
                raise ValueError("a cost cannot be negative")
            slot = (key, limit.rate, limit.period_s)
            now_scaled = now * limit.rate
            tat = max(self._tat.get(slot, now_scaled), now_scaled)
            new_tat = tat + cost * limit.period_ns
            capacity = limit.burst * limit.period_ns
            if new_tat - now_scaled > capacity:
                if cost > limit.burst:
                    retry = None
                else:
                    retry = _ceil_div(new_tat - capacity - now_scaled, limit.rate) / NS
                if worst is None or (retry is None) or (worst[0] is not None and retry > worst[0]):
                    worst = (retry, limit)
                states.append(self._state(limit, tat, now_scaled))
                continue
            planned.append((slot, new_tat))
            states.append(self._state(limit, new_tat, now_scaled))
        if worst is not None:
            return Decision(False, tuple(states), worst[0], worst[1])
        for slot, new_tat in planned:
            self._tat[slot] = new_tat
        self._ops += 1
        if self._ops % _PRUNE_EVERY == 0:
            self._prune(now)
        return Decision(True, tuple(states))

    def refund(self, key: Hashable, limit: Limit, cost: int, now_ns: int | None = None) -> None:
        """Give back units a request was charged but did not use (tokens estimated at
        admission above what the request really used). Never moves the TAT before
        now, so a refund cannot create room beyond the burst."""
        if cost <= 0:
            return
        now = self._clock() if now_ns is None else now_ns
        slot = (key, limit.rate, limit.period_s)
        tat = self._tat.get(slot)
        if tat is None:
            return
        self._tat[slot] = max(tat - cost * limit.period_ns, now * limit.rate)

    def restore(self, slot: tuple, tat_scaled: int) -> None:
        """Load one bucket, (key, rate, period_s) -> TAT * rate in ns, kept elsewhere
        between checks (several processes sharing limits through the store)."""
        self._tat[slot] = tat_scaled

    def snapshot(self) -> dict[tuple, int]:
        """Every bucket, in the form `restore` takes."""
        return dict(self._tat)

    def peek(self, key: Hashable, limit: Limit, now_ns: int | None = None) -> State:
        now = self._clock() if now_ns is None else now_ns
        now_scaled = now * limit.rate
        tat = max(self._tat.get((key, limit.rate, limit.period_s), now_scaled), now_scaled)
        return self._state(limit, tat, now_scaled)

    @staticmethod
    def _state(limit: Limit, tat: int, now_scaled: int) -> State:
        ahead = tat - now_scaled                       # ns*rate of backlog
        remaining = (limit.burst * limit.period_ns - ahead) // limit.period_ns
        return State(limit, max(remaining, 0), ahead / limit.rate / NS)

    def _prune(self, now: int) -> None:
        # A TAT in the past is the same as no entry: drop those so idle keys cost nothing.
        for slot in [s for s, tat in self._tat.items() if tat <= now * s[1]]:
            del self._tat[slot]
