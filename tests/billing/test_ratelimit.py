"""GCRA rate limiting (pure, fake clock in integer nanoseconds)."""
import random

import pytest

from gateway.billing.ratelimit import GCRA, NS, Limit


class Clock:
    def __init__(self, t: int = 10**12) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.mark.parametrize("rate, burst, seed", [(60, 60, 1), (7, 3, 2), (1000, 1, 3), (13, 40, 4)])
def test_never_admits_more_than_burst_plus_rate_times_elapsed(rate, burst, seed):
    rng = random.Random(seed)
    clock = Clock()
    gcra = GCRA(clock)
    limit = Limit("key-rpm", rate, burst)
    start = clock.t
    admitted = 0
    for _ in range(10_000):
        # Mostly bursts of arrivals, sometimes a pause: both sides of the bound.
        clock.t += rng.choice([0, 0, 0, rng.randrange(1, NS // 2), rng.randrange(1, 5 * NS)])
        if gcra.acquire([("k", limit, 1)]).allowed:
            admitted += 1
        elapsed = clock.t - start
        # admitted <= burst + rate * elapsed / 60 s, in exact integers
        assert admitted * 60 * NS <= burst * 60 * NS + rate * elapsed
    assert admitted > burst


def test_a_burst_then_exactly_one_per_interval():
    clock = Clock()
    gcra = GCRA(clock)
    limit = Limit("key-rpm", 60, 5)          # one per second, five at once
    assert all(gcra.acquire([("k", limit, 1)]).allowed for _ in range(5))
    refused = gcra.acquire([("k", limit, 1)])
    assert not refused.allowed and refused.retry_after_s == pytest.approx(1.0)
    clock.t += NS - 1
    assert not gcra.acquire([("k", limit, 1)]).allowed
    clock.t += 1
    assert gcra.acquire([("k", limit, 1)]).allowed
    assert not gcra.acquire([("k", limit, 1)]).allowed


def test_token_costs_and_a_request_larger_than_the_burst():
    clock = Clock()
    gcra = GCRA(clock)
    tpm = Limit("key-tpm", 1000, 1000, unit="tokens")
    ok = gcra.acquire([("k", tpm, 600)])
    assert ok.allowed and ok.states[0].remaining == 400
    d = gcra.acquire([("k", tpm, 600)])
    assert not d.allowed and d.retry_after_s == pytest.approx(12.0)   # 200 tokens at 1000/min
    never = gcra.acquire([("k", tpm, 1001)])
    assert not never.allowed and never.retry_after_s is None


def test_all_or_nothing_across_limits():
    clock = Clock()
    gcra = GCRA(clock)
    rpm = Limit("key-rpm", 100, 100)
    tpm = Limit("account-tpm", 100, 100, unit="tokens")
    assert gcra.acquire([("k", rpm, 1), ("a", tpm, 90)]).allowed
    d = gcra.acquire([("k", rpm, 1), ("a", tpm, 20)])
    assert not d.allowed and d.refused_by is tpm
    # the refused request did not use up a request of the rpm limit
    assert gcra.peek("k", rpm).remaining == 99


def test_refund_gives_back_unused_tokens_but_never_more_than_the_burst():
    clock = Clock()
    gcra = GCRA(clock)
    tpm = Limit("key-tpm", 1000, 1000, unit="tokens")
    assert gcra.acquire([("k", tpm, 900)]).allowed
    gcra.refund("k", tpm, 800)
    assert gcra.peek("k", tpm).remaining == 900
    gcra.refund("k", tpm, 10_000)
    assert gcra.peek("k", tpm).remaining == 1000


def test_keys_are_independent_and_idle_keys_are_pruned():
    clock = Clock()
    gcra = GCRA(clock)
    limit = Limit("key-rpm", 60, 1)
    assert gcra.acquire([("a", limit, 1)]).allowed
    assert gcra.acquire([("b", limit, 1)]).allowed
    assert not gcra.acquire([("a", limit, 1)]).allowed
    clock.t += 3600 * NS
    for i in range(5000):
        clock.t += 2 * NS            # every earlier key is idle again by now
        gcra.acquire([(f"x{i}", limit, 1)])
    assert len(gcra) < 1000


def test_tightest_state_and_reset():
    clock = Clock()
    gcra = GCRA(clock)
    loose = Limit("account-rpm", 1000, 1000)
    tight = Limit("key-rpm", 10, 2)
    d = gcra.acquire([("a", loose, 1), ("k", tight, 1)])
    state = d.tightest()
    assert state.limit is tight and state.remaining == 1
    assert state.reset_s == pytest.approx(6.0)


def test_limits_validate():
    with pytest.raises(ValueError):
        Limit("x", 0, 1)
    with pytest.raises(ValueError):
        Limit("x", 1, 0)
