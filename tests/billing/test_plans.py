"""Plan windows and restrictions (pure): boundaries, refusals, rate-limit resolution."""
import pytest

from gateway import errors
from gateway.billing.plans import check_request, rate_limits, session_messages
from gateway.billing.windows import DAY, HOUR, daily_start, plan_windows
from gateway.config import ConfigError, LimitsConfig, PlanConfig, parse_config

T0 = 1_700_000_000.0   # 2023-11-14T22:13:20Z


def cfg(plans=(), limits=None):
    raw = {"providers": [{"id": "sim", "kind": "simulator"}],
           "models": [{"id": "mini", "aliases": ["m"], "input_usd_per_mtok": 1.0,
                       "output_usd_per_mtok": 2.0, "routes": [{"provider": "sim", "model": "x"}]},
                      {"id": "big", "input_usd_per_mtok": 10.0, "output_usd_per_mtok": 30.0,
                       "routes": [{"provider": "sim", "model": "y"}]}],
           "plans": list(plans)}
    if limits is not None:
        raw["limits"] = limits
    return parse_config(raw)


def test_daily_start_at_the_reset_hour():
    midnight = T0 // DAY * DAY
    assert daily_start(T0, 0) == midnight
    assert daily_start(midnight, 0) == midnight                  # the boundary itself is new
    assert daily_start(midnight - 0.001, 0) == midnight - DAY
    # reset at 06:00 UTC: 22:13 belongs to today's 06:00 period, 05:59 to yesterday's
    assert daily_start(T0, 6) == midnight + 6 * HOUR
    assert daily_start(midnight + 6 * HOUR - 1, 6) == midnight - DAY + 6 * HOUR
    assert daily_start(midnight + 6 * HOUR, 6) == midnight + 6 * HOUR
    with pytest.raises(ValueError):
        daily_start(T0, 24)


def test_plan_windows_rolling_and_daily():
    rolling = plan_windows(PlanConfig(id="p", window_5h_usd=5.0, window_7d_usd=40.0), T0)
    assert [(w.name, w.start, w.inclusive, w.limit_micros) for w in rolling] == [
        ("5h", T0 - 5 * HOUR, False, 5_000_000), ("7d", T0 - 7 * DAY, False, 40_000_000)]
    w5 = rolling[0]
    assert not w5.counts(T0 - 5 * HOUR) and w5.counts(T0 - 5 * HOUR + 0.001)
    assert w5.frees_at(T0 - HOUR) == T0 + 4 * HOUR
    daily = plan_windows(PlanConfig(id="d", daily_usd=1.5, daily_reset_hour=3,
                                    daily_input_tokens=100, daily_output_tokens=10), T0)
    (d,) = daily
    assert d.name == "daily" and d.inclusive and d.end == d.start + DAY
    assert (d.limit_micros, d.limit_input, d.limit_output) == (1_500_000, 100, 10)
    assert d.counts(d.start) and not d.counts(d.start - 0.001)
    assert d.frees_at(d.start + 5) == d.end
    assert plan_windows(PlanConfig(id="none", models=("mini",)), T0) == ()


def test_config_validates_plans_and_limits():
    with pytest.raises(ConfigError, match="not both"):
        cfg([{"id": "x", "daily_usd": 1.0, "window_5h_usd": 1.0}])
    with pytest.raises(ConfigError, match="modes"):
        cfg([{"id": "x", "modes": ["turbo"]}])
    with pytest.raises(ConfigError, match="max_tokens"):
        cfg([{"id": "x", "max_tokens": 0}])
    with pytest.raises(ConfigError, match="limits.key_rpm"):
        cfg(limits={"key_rpm": -1})
    with pytest.raises(ConfigError, match="limits.nope"):
        cfg(limits={"nope": 1})


FREE = PlanConfig(id="free", free=True, max_tokens=4000, modes=("eco",), streaming=False,
                  session_messages=5, models=("m",))


@pytest.mark.parametrize("kwargs, code", [
    (dict(model_id="big"), "model_not_allowed"),
    (dict(mode="sport"), "mode_not_allowed"),
    (dict(stream=True), "streaming"),
    (dict(max_tokens=4001), "max_tokens"),
    (dict(session_count=5), "session_messages"),   # five already: a sixth is refused
])
def test_free_tier_refusals_name_the_limit(kwargs, code):
    facts = dict(model_id="mini", mode="eco", stream=False, max_tokens=4000, session_count=4)
    facts.update(kwargs)
    config = cfg()
    with pytest.raises(errors.FreeTierLimit) as info:
        check_request(config, FREE, **facts)
    err = info.value
    assert err.status == 403 and err.type_name == "free_tier_limit" and err.code == code
    assert code in err.message


def test_free_tier_allows_what_it_allows_and_a_missing_mode():
    config = cfg()
    check_request(config, FREE, model_id="mini", mode="eco", stream=False, max_tokens=4000,
                  session_count=4)
    check_request(config, FREE, model_id="mini", mode=None, stream=False, max_tokens=None,
                  session_count=None)


def test_paid_plan_restrictions_say_plan_restricted():
    plan = PlanConfig(id="team", models=("mini",), modes=("eco", "balanced"))
    with pytest.raises(errors.PlanRestricted) as info:
        check_request(cfg(), plan, model_id="big", mode=None, stream=True, max_tokens=None,
                      session_count=None)
    assert info.value.status == 403 and info.value.code == "model_not_allowed"
    assert "'team'" in info.value.message


def test_session_hook():
    class Req:
        metadata = {"prism_session_messages": 3}

    class Sel:
        session_messages = 7

    assert session_messages(Req(), object()) == 3
    assert session_messages(Req(), Sel()) == 7
    assert session_messages(object(), object()) is None


def test_rate_limits_resolve_plan_then_default():
    config = cfg(limits={"key_rpm": 100, "account_tpm": 5000, "burst_seconds": 6})
    limits = rate_limits(config, None)
    assert set(limits) == {"key-rpm", "account-tpm"}
    assert (limits["key-rpm"].rate, limits["key-rpm"].burst) == (100, 10)
    plan = PlanConfig(id="p", key_rpm=0, account_rpm=30)
    limits = rate_limits(config, plan)
    assert set(limits) == {"account-rpm", "account-tpm"}          # 0 switches one off
    assert limits["account-rpm"].rate == 30
    assert rate_limits(cfg(), None) == {}
    assert LimitsConfig().key_rpm == 0
