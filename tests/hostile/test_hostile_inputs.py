"""Fixed hostile bodies on every route that takes one, over HTTP against a running
gateway: each answers 400 in the route's dialect naming the field, nothing is held or
charged, and the upstream is never called. (fuzz/test_fuzz_http_hostile.py mutates the
same bodies at random.)"""
from __future__ import annotations

import httpx
import pytest

import hostile_http as hh


@pytest.fixture(scope="module")
def target(sim_url, tmp_path_factory):
    gw = hh.start(tmp_path_factory.mktemp("hostile"), sim_url)
    target = hh.Target.make(gw)
    yield target
    target.close()
    gw.stop()


def _deepest_string_path(body) -> tuple:
    """The last path whose value is a string (a field deep inside the body)."""
    found = [p for p in hh.paths(body) if isinstance(_get(body, p), str)]
    return (found or hh.paths(body))[-1]


def _get(body, path):
    for p in path:
        body = body[p]
    return body


def _name(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


# The fuzzer (fuzz/test_fuzz_http_hostile.py) tries the rest of hostile_http.RAW.
FIELD_KINDS = ["surrogate", "huge-int", "big-float", "nan", "deep-object"]


@pytest.mark.parametrize("route", hh.ROUTES, ids=[r.name for r in hh.ROUTES])
def test_bad_values_are_400_naming_the_field(target, sim_url, route):
    calls_before = httpx.get(sim_url + "/_sim/stats").json()
    path = _deepest_string_path(route.body)
    for kind in FIELD_KINDS:
        r = hh.check(target, route, hh.Mutation("raw", path, kind))
        assert r.status_code == 400, (route.name, kind, r.text)
        message = r.text
        assert _name(path) in message, (route.name, kind, message)
    for kind in ("surrogate-bytes", "bad-utf8"):
        r = hh.check(target, route, hh.Mutation("raw", path, kind))
        assert r.status_code == 400 and "UTF-8" in r.text, (route.name, kind, r.text)
    r = hh.check(target, route, hh.Mutation("key", path, "surrogate"))
    assert r.status_code == 400 and "surrogate" in r.text, (route.name, r.text)
    r = hh.check(target, route, hh.Mutation("raw", (), "deep-list"))
    assert r.status_code == 400, (route.name, r.text)
    for cut in (7,):
        r = hh.check(target, route, hh.Mutation("truncate", (), cut))
        assert r.status_code == 400, (route.name, cut, r.text)
    assert httpx.get(sim_url + "/_sim/stats").json() == calls_before, \
        "a refused body reached the upstream"


@pytest.mark.parametrize("route", hh.ROUTES, ids=[r.name for r in hh.ROUTES])
def test_wrong_content_types_and_non_objects_never_5xx(target, route):
    for ctype in hh.CONTENT_TYPES:
        hh.check(target, route, hh.Mutation("ctype", (), ctype))
    for value in ([], "x"):
        r = hh.check(target, route, hh.Mutation("value", (), value))
        assert r.status_code == 400


def test_valid_bodies_still_work(target):
    """The guard refuses only what is wrong: the unmutated bodies succeed."""
    for route in hh.ROUTES:
        r = target.send(route, hh.json.dumps(route.body).encode(), "application/json")
        assert r.status_code in (200, 201), (route.name, r.status_code, r.text[:300])
