"""The circuit breaker state machine and the failover decisions (pure, fake clock)."""
from __future__ import annotations

import pytest

from gateway import errors
from gateway.routing.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from gateway.routing.failover import exhausted, fails_over


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_opens_after_n_consecutive_failures(clock):
    b = Breaker(3, 30.0, clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == CLOSED
    b.success()                      # a success resets the count
    for _ in range(3):
        assert b.allow()
        b.failure()
    assert b.state == OPEN and not b.allow()
    assert b.retry_in() == 30.0


def test_half_open_lets_exactly_one_probe_through_then_closes_on_success(clock):
    b = Breaker(1, 10.0, clock)
    b.failure()
    clock.now += 9.9
    assert not b.allow() and b.state == OPEN
    clock.now += 0.1
    assert b.allow() and b.state == HALF_OPEN      # the probe
    assert not b.allow() and not b.allow()          # everyone else waits
    b.success()
    assert b.state == CLOSED and b.allow() and b.allow()
    assert b.snapshot()["consecutive_failures"] == 0


def test_failed_probe_reopens_for_a_full_cooldown(clock):
    b = Breaker(2, 10.0, clock)
    b.failure(), b.failure()
    clock.now += 10
    assert b.allow()
    clock.now += 3
    b.failure()
    assert b.state == OPEN and b.retry_in() == 10.0
    clock.now += 9
    assert not b.allow()
    clock.now += 1
    assert b.allow() and b.state == HALF_OPEN


def test_released_probe_frees_the_slot(clock):
    b = Breaker(1, 5.0, clock)
    b.failure()
    clock.now += 5
    assert b.allow()
    b.release()                        # its request was cancelled: no verdict
    assert b.state == HALF_OPEN and b.allow()


def test_snapshot_shape(clock):
    b = Breaker(1, 5.0, clock)
    b.failure()
    clock.now += 2
    assert b.snapshot() == {"state": "open", "consecutive_failures": 1, "retry_in_seconds": 3.0,
                            "failures": 1, "successes": 0}


def test_invalid_settings():
    with pytest.raises(ValueError):
        Breaker(0, 1.0, lambda: 0.0)


@pytest.mark.parametrize("exc, moves_on", [
    (errors.UpstreamError("500"), True),
    (errors.UpstreamTimeout("slow"), True),
    (errors.UpstreamProtocolError("junk"), True),
    (errors.RateLimited("429", retry_after=3), True),
    (errors.UpstreamClientError("bad field"), False),
    (errors.InvalidRequest("x"), False),
    (ValueError("bug"), False),
])
def test_which_failures_fail_over(exc, moves_on):
    assert fails_over(exc) is moves_on


def test_one_route_keeps_its_own_error():
    err = errors.RateLimited("upstream sim is rate limiting", retry_after=7)
    assert exhausted("m", [err], None) is err


def test_all_routes_failed_names_nothing_about_upstreams():
    failures = [errors.UpstreamError("upstream a failed with HTTP 500 at https://10.0.0.5/v1 key sk-x"),
                errors.UpstreamTimeout("upstream b timed out (ReadTimeout)")]
    err = exhausted("prism-mini", failures, None)
    assert isinstance(err, errors.UpstreamError) and err.status == 502
    assert err.type_name == "provider_error"
    assert "prism-mini" in err.message and "timed out" in err.message
    for secret in ("https://", "10.0.0.5", "sk-", "upstream a", "HTTP 500"):
        assert secret not in err.message


def test_every_route_rate_limited_stays_a_429_with_the_soonest_retry():
    err = exhausted("m", [errors.RateLimited("a", retry_after=9), errors.RateLimited("b", retry_after=2)], None)
    assert isinstance(err, errors.RateLimited) and err.headers["Retry-After"] == "2"


def test_every_breaker_open_is_a_502_with_retry_after():
    err = exhausted("m", [], 4.2)
    assert err.status == 502 and err.headers["Retry-After"] == "5"
