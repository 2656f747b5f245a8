"""A circuit breaker for one provider route: a small state machine with an injected clock (pure).

    closed ──N consecutive failures──> open ──cooldown elapsed, next allow()──> half_open
      ^                                  ^                                        │
      └────────── probe succeeds ────────┼──────────── probe fails ───────────────┘

Closed lets everything through and counts consecutive failures (a success resets the
count). Open refuses until ``cooldown`` seconds have passed since it opened; the first
``allow()`` after that turns it half-open and is the one probe. Half-open refuses
everyone else while the probe is out; the probe's success closes the breaker, its
failure re-opens it for another cooldown. A probe that ends with neither (its caller
was cancelled) is ``release()``d so the next request can probe instead.

The dispatcher owns one per route and reports each attempt; this module only decides.
"""
from __future__ import annotations

from typing import Any, Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class Breaker:
    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float]) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("a breaker needs failures >= 1 and a positive cooldown")
        self.failures_to_open = failures
        self.cooldown = cooldown
        self._clock = clock
        self.state = CLOSED
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self._probe_out = False
        self.total_failures = 0
        self.total_successes = 0

    def allow(self) -> bool:
        """May a request use this route now? In half-open, True means "you are the probe"."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            assert self.opened_at is not None
            if self._clock() - self.opened_at < self.cooldown:
                return False
            self.state = HALF_OPEN
            self._probe_out = True
            return True
        if self._probe_out:
            return False
        self._probe_out = True
        return True

    def success(self) -> None:
        self.total_successes += 1
        self.consecutive_failures = 0
        self.state = CLOSED
        self.opened_at = None
        self._probe_out = False

    def failure(self) -> None:
        self.total_failures += 1
        self.consecutive_failures += 1
        if self.state == HALF_OPEN or self.consecutive_failures >= self.failures_to_open:
            self.state = OPEN
            self.opened_at = self._clock()
        self._probe_out = False

    def release(self) -> None:
        """The attempt ended without a verdict (cancelled): free the probe slot."""
        self._probe_out = False

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self.state != OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self._clock() - self.opened_at))

    def snapshot(self) -> dict[str, Any]:
        return {"state": self.state, "consecutive_failures": self.consecutive_failures,
                "retry_in_seconds": round(self.retry_in(), 3),
                "failures": self.total_failures, "successes": self.total_successes}
