"""Hostile bodies over HTTP against a running gateway, at random: hypothesis mutates a
valid body of every route (tests/hostile/hostile_http.py: surrogates, huge integers,
NaN/Infinity, deep nesting, wrong types, oversized strings, truncation, non-UTF-8
bytes, wrong content types) and checks that no answer is 5xx, every 4xx has the
route dialect's error shape, and a refused request moves no money.

Bounded in CI (PRISM_FUZZ_HTTP_EXAMPLES, default 60 mutations in all); `python -m
fuzz` raises it and repeats with fresh seeds.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "hostile"))
import hostile_http as hh  # noqa: E402

EXAMPLES = int(os.environ.get("PRISM_FUZZ_HTTP_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def target():
    sim = hh.harness.start_simulator()
    with tempfile.TemporaryDirectory() as tmp:
        gw = hh.start(Path(tmp), sim.url)
        t = hh.Target.make(gw)
        yield t
        t.close()
        gw.stop()
    sim.stop()


@st.composite
def mutations(draw):
    route = draw(st.sampled_from(hh.ROUTES))
    where = draw(st.sampled_from([()] + hh.paths(route.body)))
    kind = draw(st.sampled_from(["raw", "raw", "value", "key", "truncate", "insert", "ctype"]))
    if kind in ("raw", "key"):
        arg = draw(st.sampled_from(sorted(hh.RAW)))
        if kind == "key" and not where:
            kind = "raw"
    elif kind == "value":
        arg = draw(st.sampled_from(hh.VALUES) | st.text(max_size=20)
                   | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False))
    elif kind == "truncate":
        arg = draw(st.integers(0, 10_000))
    elif kind == "insert":
        arg = (draw(st.integers(0, 10_000)),
               draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\x00", b"\\", b'"', b"{", b","])))
    else:
        arg = draw(st.sampled_from(hh.CONTENT_TYPES))
    return route, hh.Mutation(kind, where, arg)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations())
def test_hostile_bodies_never_5xx_and_cost_nothing_when_refused(target, case):
    route, mutation = case
    hh.check(target, route, mutation)
