"""Integer micro-USD pricing (pure) and the meter that decides which usage is billed."""
from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import canonical as c
from gateway import tokenizer
from gateway.billing.meter import Meter
from gateway.billing.pricing import (MICROS_PER_USD, TokenPrice, cost_micros, format_usd,
                                     usd_to_micros, worst_case_micros)

MINI = TokenPrice.from_usd_per_mtok(0.15, 0.60)             # the shipped prism-mini
STANDARD = TokenPrice.from_usd_per_mtok(2.50, 10.00, 1.25)  # with a cached-input price

tokens = st.integers(min_value=0, max_value=10**12)
prices = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)


def _exact_micros(input_usd, output_usd, cached_usd, usage: c.Usage) -> Fraction:
    """The true cost as a rational number, from the decimal prices as written."""
    def per_token(usd):  # $X per 1e6 tokens is X micro-USD per token
        return Fraction(Decimal(str(usd)))
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    return ((usage.input_tokens - cached) * per_token(input_usd)
            + cached * per_token(input_usd if cached_usd is None else cached_usd)
            + usage.output_tokens * per_token(output_usd))


# ---------------------------------------------------------------- prices

def test_price_is_pico_usd_per_token():
    assert MINI == TokenPrice(input_pico=150_000, output_pico=600_000, cached_input_pico=150_000)
    assert STANDARD.cached_input_pico == 1_250_000
    # no cached price configured: cached input costs the full input price
    assert TokenPrice.from_usd_per_mtok(3.0, 15.0).cached_input_pico == 3_000_000


def test_float_prices_round_to_exact_pico():
    # 0.1 + 0.2 style float noise must not leak into the integer price
    assert TokenPrice.from_usd_per_mtok(0.1 + 0.2, 0.07).input_pico == 300_000
    assert TokenPrice.from_usd_per_mtok(0.1 + 0.2, 0.07).output_pico == 70_000


# ---------------------------------------------------------------- cost

def test_zero_usage_costs_nothing():
    assert cost_micros(MINI, c.Usage()) == 0


def test_one_sub_micro_token_rounds_up_to_one_micro():
    assert cost_micros(MINI, c.Usage(input_tokens=1)) == 1


def test_round_up_once_for_the_whole_request_not_per_part():
    # 0.15 + 0.60 = 0.75 micro: one micro, where rounding each part up would give two
    assert cost_micros(MINI, c.Usage(input_tokens=1, output_tokens=1)) == 1
    # 7 x 0.15 = 1.05 micro -> 2 (not 7 x ceil(0.15) = 7)
    assert cost_micros(MINI, c.Usage(input_tokens=7)) == 2


def test_sub_micro_prices_stay_exact_over_many_tokens():
    # adding 0.15 micro per token in floats drifts above 150 and would round up to 151
    assert math.ceil(sum([0.15] * 1000)) == 151
    assert cost_micros(MINI, c.Usage(input_tokens=1000)) == 150
    assert cost_micros(MINI, c.Usage(input_tokens=1_000_000_007)) == 150_000_002
    assert cost_micros(MINI, c.Usage(input_tokens=10**9)) == 150_000_000
    assert cost_micros(MINI, c.Usage(input_tokens=10**6, output_tokens=10**6)) == 750_000
    assert cost_micros(MINI, c.Usage(input_tokens=10**12 + 1)) == 150_000_000_001


def test_cached_input_is_billed_at_the_cached_price():
    usage = c.Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=10)
    # 600 x 2.50 + 400 x 1.25 + 10 x 10.00 micro-USD
    assert cost_micros(STANDARD, usage) == 1500 + 500 + 100
    # the same usage with no cached price: every input token at full price
    full = TokenPrice.from_usd_per_mtok(2.50, 10.00)
    assert cost_micros(full, usage) == 2500 + 100


def test_cached_count_above_input_count_is_capped():
    # a confused upstream must not make us bill negative uncached tokens
    usage = c.Usage(input_tokens=100, cached_input_tokens=5000)
    assert cost_micros(STANDARD, usage) == 125       # 100 x 1.25


def test_worst_case_holds_the_whole_prompt_at_full_price_plus_output_cap():
    # 100 x 0.15 + 4096 x 0.60 = 15 + 2457.6 -> 2473
    assert worst_case_micros(MINI, 100, 4096) == 2473
    assert worst_case_micros(STANDARD, 1000, 0) == 2500   # no cached discount up front
    assert worst_case_micros(MINI, 0, 0) == 0


@given(inp=tokens, cached=tokens, out=tokens, pi=prices, po=prices,
       pc=st.one_of(st.none(), prices))
def test_cost_is_the_exact_cost_rounded_up_once(inp, cached, out, pi, po, pc):
    price = TokenPrice.from_usd_per_mtok(pi, po, pc)
    usage = c.Usage(input_tokens=inp, cached_input_tokens=cached, output_tokens=out)
    cost = cost_micros(price, usage)
    assert isinstance(cost, int) and cost >= 0
    # against the price as it was stored (pico-USD per token): ceil, exactly
    cached_n = min(cached, inp)
    pico = (inp - cached_n) * price.input_pico + cached_n * price.cached_input_pico \
        + out * price.output_pico
    assert cost * 1_000_000 >= pico > (cost - 1) * 1_000_000


@given(inp=tokens, out=tokens)
def test_cost_matches_decimal_prices_for_prices_with_six_decimals(inp, out):
    usage = c.Usage(input_tokens=inp, output_tokens=out)
    exact = _exact_micros(0.15, 0.60, None, usage)
    cost = cost_micros(MINI, usage)
    assert cost >= exact > cost - 1


@given(inp=tokens, out=tokens, cached=tokens, more=st.integers(min_value=1, max_value=10**9),
       which=st.sampled_from(["input_tokens", "output_tokens", "cached_input_tokens"]),
       pi=prices, po=prices)
def test_cost_is_monotonic_in_tokens(inp, out, cached, more, which, pi, po):
    price = TokenPrice.from_usd_per_mtok(pi, po, pi / 2)
    base = dict(input_tokens=inp, output_tokens=out, cached_input_tokens=min(cached, inp))
    bigger = dict(base)
    bigger[which] += more
    if which == "cached_input_tokens":
        # more cached tokens come with as many more input tokens (they are part of it)
        bigger["input_tokens"] += more
    assert cost_micros(price, c.Usage(**bigger)) >= cost_micros(price, c.Usage(**base))


@given(a=tokens, b=tokens, out_a=tokens, out_b=tokens)
def test_splitting_a_bill_never_makes_it_cheaper(a, b, out_a, out_b):
    whole = cost_micros(MINI, c.Usage(input_tokens=a + b, output_tokens=out_a + out_b))
    parts = (cost_micros(MINI, c.Usage(input_tokens=a, output_tokens=out_a))
             + cost_micros(MINI, c.Usage(input_tokens=b, output_tokens=out_b)))
    assert whole <= parts <= whole + 1


@given(prompt=st.integers(min_value=0, max_value=10**7),
       cap=st.integers(min_value=0, max_value=10**6),
       out=st.integers(min_value=0, max_value=10**6),
       cached=st.integers(min_value=0, max_value=10**7))
def test_worst_case_covers_any_usage_within_the_cap(prompt, cap, out, cached):
    out = min(out, cap)
    usage = c.Usage(input_tokens=prompt, cached_input_tokens=min(cached, prompt),
                    output_tokens=out)
    assert cost_micros(STANDARD, usage) <= worst_case_micros(STANDARD, prompt, cap)


# ---------------------------------------------------------------- dollars

def test_usd_to_micros():
    assert usd_to_micros(5.0) == 5_000_000
    assert usd_to_micros(0.1) == 100_000
    assert usd_to_micros(0.1 + 0.2) == 300_000
    assert usd_to_micros(-2.5) == -2_500_000
    assert usd_to_micros(0) == 0
    assert MICROS_PER_USD == 1_000_000


@pytest.mark.parametrize("micros,text", [
    (0, "0.000000"),
    (1, "0.000001"),
    (999_999, "0.999999"),
    (1_000_000, "1.000000"),
    (1_500_000, "1.500000"),
    (123_456_789, "123.456789"),
    (10**15 + 1, "1000000000.000001"),
    (-1, "-0.000001"),
    (-1_234_567, "-1.234567"),
    (-1_000_000, "-1.000000"),
])
def test_format_usd(micros, text):
    assert format_usd(micros) == text


@given(st.integers(min_value=-10**18, max_value=10**18))
def test_format_usd_is_exact(micros):
    text = format_usd(micros)
    assert Decimal(text) * MICROS_PER_USD == micros
    assert len(text.split(".")[1]) == 6
    assert text.startswith("-") == (micros < 0)


# ---------------------------------------------------------------- the meter

def _feed(meter: Meter, events) -> None:
    for ev in events:
        meter.delivered(ev)


def test_upstream_usage_wins_over_the_estimate():
    m = Meter(prompt_tokens=50)
    reported = c.Usage(input_tokens=42, output_tokens=7, cached_input_tokens=10)
    _feed(m, [c.StreamStart(id="x", model="m"), c.TextDelta("Hello there, how are you"),
              c.Finish("stop"), c.UsageEvent(reported)])
    assert m.usage() is reported
    assert not m.usage().estimated
    assert m.finish == "stop"


def test_last_reported_usage_wins():
    m = Meter(prompt_tokens=5)
    _feed(m, [c.UsageEvent(c.Usage(input_tokens=5, output_tokens=1)),
              c.TextDelta("abc"),
              c.UsageEvent(c.Usage(input_tokens=5, output_tokens=9))])
    assert m.usage().output_tokens == 9


def test_usage_seen_but_not_delivered_still_wins():
    m = Meter(prompt_tokens=50)
    _feed(m, [c.TextDelta("partial")])
    reported = c.Usage(input_tokens=48, output_tokens=30)
    m.seen_usage(reported)
    assert m.usage() == reported


def test_without_upstream_usage_bill_prompt_plus_delivered_text_estimated():
    m = Meter(prompt_tokens=123)
    delivered = ["The quick brown ", "fox jumps over ", "the lazy dog."]
    _feed(m, [c.StreamStart(id="x", model="m"), *map(c.TextDelta, delivered)])
    u = m.usage()
    assert u.estimated is True
    assert u.input_tokens == 123
    assert u.output_tokens == tokenizer.count_text("".join(delivered))
    assert u.output_tokens >= 9            # a real tokenizer count, not zero, not chars
    assert u.output_tokens < len("".join(delivered))
    assert m.finish is None                # the stream was cut before a Finish


def test_estimate_counts_thinking_and_tool_calls_too():
    m = Meter(prompt_tokens=10)
    _feed(m, [c.ThinkingDelta("let me think about the weather"),
              c.ToolCallStart(index=0, id="call_1", name="get_weather"),
              c.ToolCallDelta(index=0, arguments='{"city": "Paris"}')])
    u = m.usage()
    assert u.estimated
    text_only = tokenizer.count_text("let me think about the weather")
    assert u.output_tokens > text_only
    assert u.output_tokens == tokenizer.count_text(
        "let me think about the weather" + "get_weather" + '{"city": "Paris"}')
    assert m.produced_output


def test_nothing_delivered_bills_only_the_prompt():
    m = Meter(prompt_tokens=77)
    _feed(m, [c.StreamStart(id="x", model="m"), c.TextDelta("")])
    assert m.usage() == c.Usage(input_tokens=77, output_tokens=0, estimated=True)
    assert not m.produced_output
    assert m.events == 2


def test_estimate_only_counts_what_was_delivered():
    """Events the gateway never handed to the client are not passed to delivered();
    the estimate grows only with delivered text."""
    m = Meter(prompt_tokens=0)
    m.delivered(c.TextDelta("one two three"))
    first = m.usage().output_tokens
    m.delivered(c.TextDelta(" four five six seven eight"))
    assert m.usage().output_tokens > first > 0


@given(st.lists(st.text(max_size=40), max_size=20), st.integers(0, 10**6))
def test_estimate_is_prompt_plus_tokenized_delivery(chunks, prompt):
    # (not monotonic per chunk: BPE may encode "hello" in fewer tokens than "hell")
    m = Meter(prompt_tokens=prompt)
    for chunk in chunks:
        m.delivered(c.TextDelta(chunk))
    u = m.usage()
    assert u.input_tokens == prompt and u.estimated
    assert m.produced_output == any(chunks)
    assert u.output_tokens == tokenizer.count_text("".join(chunks))
    assert cost_micros(MINI, u) >= cost_micros(MINI, c.Usage(input_tokens=prompt))
