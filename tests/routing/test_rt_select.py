"""Selection: catalog ids and aliases, modes by task type, pins, plans (pure, no I/O)."""
from __future__ import annotations

import pytest

from gateway import canonical as c
from gateway import errors
from gateway.config import parse_config
from gateway.routing.catalog import Catalog
from gateway.routing.modes import DEFAULT_RULES, ModeRule, choose, rules_from
from gateway.routing.select import select

PROMPTS = {
    "simple": "What is the capital of France?",
    "code": "Write a Python function that reverses a linked list.",
    "reasoning": "Prove that the sum of two odd numbers is even.",
    "complex": "Write a comprehensive business plan for a bakery, including market analysis, "
               "pricing, staffing, marketing and a three-year budget.",
}


def _config(**routing):
    return parse_config({
        "providers": [{"id": "a", "kind": "simulator"}, {"id": "b", "kind": "simulator"}],
        "models": [
            {"id": "small", "aliases": ["s"], "tier": "eco", "input_usd_per_mtok": 0.1,
             "output_usd_per_mtok": 0.4, "capabilities": ["chat", "tools", "json"],
             "routes": [{"provider": "a", "model": "up-small"}]},
            {"id": "small-vision", "tier": "eco", "input_usd_per_mtok": 0.3,
             "output_usd_per_mtok": 1.2, "capabilities": ["chat", "vision"],
             "routes": [{"provider": "a", "model": "up-sv"}]},
            {"id": "mid", "tier": "balanced", "input_usd_per_mtok": 2.0,
             "output_usd_per_mtok": 8.0, "capabilities": ["chat", "tools", "json", "vision"],
             "routes": [{"provider": "a", "model": "up-mid"}, {"provider": "b", "model": "up-mid-b"}]},
            {"id": "big", "aliases": ["max"], "tier": "sport", "input_usd_per_mtok": 10.0,
             "output_usd_per_mtok": 40.0, "max_output_tokens": 8000,
             "capabilities": ["chat", "tools", "json", "vision", "long_context"],
             "routes": [{"provider": "b", "model": "up-big"}]},
            {"id": "big-cheap", "tier": "sport", "input_usd_per_mtok": 5.0,
             "output_usd_per_mtok": 20.0, "capabilities": ["chat"], "enabled": False,
             "routes": [{"provider": "b", "model": "up-bc"}]},
        ],
        "routing": routing,
    })


def _req(text="hi", model="any", **kw):
    return c.Request(model=model, messages=(c.Message("user", (c.TextPart(text),)),), **kw)


@pytest.fixture
def catalog():
    return Catalog(_config())


@pytest.mark.parametrize("task, eco, balanced, sport", [
    ("simple", "small", "small", "big"),
    ("code", "small", "mid", "big"),
    ("reasoning", "mid", "mid", "big"),
    ("complex", "mid", "big", "big"),
])
def test_mode_table(catalog, task, eco, balanced, sport):
    req = _req(PROMPTS[task])
    got = {mode: select(catalog, req, mode=mode) for mode in ("eco", "balanced", "sport")}
    assert {m: s.task_type for m, s in got.items()} == dict.fromkeys(got, task)
    assert [got[m].entry.model.id for m in ("eco", "balanced", "sport")] == [eco, balanced, sport]
    assert got["eco"].headers == {"X-Prism-Task-Type": task}
    assert got["eco"].mode == "eco" and got["eco"].reason.startswith("eco/" + task)


def test_auto_is_any_and_routes_keep_order(catalog):
    sel = select(catalog, _req(PROMPTS["reasoning"], model="auto"), mode="eco")
    assert sel.entry.model.id == "mid"
    assert [(r.provider, r.model) for r in sel.routes] == [("a", "up-mid"), ("b", "up-mid-b")]


def test_any_without_a_mode_is_missing_mode_header(catalog):
    with pytest.raises(errors.MissingModeHeader) as info:
        select(catalog, _req())
    assert info.value.status == 400 and info.value.type_name == "missing_mode_header"


def test_named_model_needs_no_mode_and_keeps_it_for_billing(catalog):
    assert select(catalog, _req(model="s")).entry.model.id == "small"
    sel = select(catalog, _req(model="s"), mode="sport")
    assert sel.entry.model.id == "small" and sel.mode == "sport" and not sel.pinned


def test_bad_mode_is_invalid_request(catalog):
    with pytest.raises(errors.InvalidRequest):
        select(catalog, _req(), mode="turbo")


def test_capabilities_filter_the_pool(catalog):
    image = c.Message("user", (c.TextPart("What is in this picture?"), c.ImagePart(url="https://x/y.png")))
    req = c.Request(model="any", messages=(image,))
    assert select(catalog, req, mode="eco").entry.model.id == "small-vision"
    tools = _req("What's the weather?", tools=(c.Tool("weather"),))
    assert select(catalog, tools, mode="eco").entry.model.id == "small"
    both = c.Request(model="any", messages=(image,), tools=(c.Tool("weather"),))
    assert select(catalog, both, mode="eco").entry.model.id == "mid"
    big_out = _req("hello", max_tokens=6000)   # only "big" allows 6000 output tokens
    assert select(catalog, big_out, mode="eco").entry.model.id == "big"
    with pytest.raises(errors.InvalidRequest):
        select(catalog, _req("hello", max_tokens=100_000), mode="eco")


def test_disabled_models_are_never_picked(catalog):
    # big-cheap is sport tier and cheaper than big, but disabled.
    assert select(catalog, _req(PROMPTS["simple"]), mode="sport").entry.model.id == "big"


def test_floor_nobody_clears_takes_the_best_available():
    cat = Catalog(_config(eco={"simple": "sport"}))
    only_small = [cat.resolve("small"), cat.resolve("small-vision")]
    entry, why = choose(cat.rules["eco"], "simple", only_small)
    assert entry.model.id == "small" and "best available" in why


def test_prism_toml_overrides_merge_with_the_defaults():
    rules = rules_from(_config(balanced={"complex": "balanced"}, eco={"pick": "best"}).routing)
    assert rules["balanced"] == ModeRule("cheapest", "eco", "balanced", "balanced", "balanced")
    assert rules["eco"].pick == "best" and rules["sport"] == DEFAULT_RULES["sport"]
    cat = Catalog(_config(balanced={"complex": "balanced"}))
    assert select(cat, _req(PROMPTS["complex"]), mode="balanced").entry.model.id == "mid"


def test_pin_by_id_or_alias_wins_over_mode_and_body(catalog):
    sel = select(catalog, _req(PROMPTS["complex"]), mode="eco", prefer="max")
    assert sel.entry.model.id == "big" and sel.pinned and sel.entry.public_id == "max"
    sel = select(catalog, _req(model="small"), prefer="mid")
    assert sel.entry.model.id == "mid"


def test_unknown_pin_is_404_naming_the_header(catalog):
    for name in ("nope", "big-cheap"):      # unknown, and disabled: indistinguishable
        with pytest.raises(errors.ModelNotFound) as info:
            select(catalog, _req(), mode="eco", prefer=name)
        assert "X-Prism-Model-Prefer" in info.value.message and info.value.status == 404


def test_plan_hook_refuses_pins_and_names_outside_it_and_narrows_auto(catalog):
    allowed = frozenset({"small", "mid"})
    with pytest.raises(errors.PlanRestricted) as info:
        select(catalog, _req(), mode="eco", prefer="max", allowed=allowed)
    assert info.value.status == 403 and info.value.code == "model_not_allowed"
    with pytest.raises(errors.PlanRestricted):
        select(catalog, _req(model="big"), allowed=allowed)
    # sport would pick big; the plan narrows the pool to the best it allows.
    assert select(catalog, _req(PROMPTS["complex"]), mode="sport",
                  allowed=allowed).entry.model.id == "mid"
    with pytest.raises(errors.PlanRestricted):
        select(catalog, _req(), mode="eco", allowed=frozenset({"big-cheap"}))


def test_catalog_lists_each_model_once_and_aliases_separately(catalog):
    assert [e.model.id for e in catalog.models()] == ["small", "small-vision", "mid", "big"]
    assert "s" in [e.public_id for e in catalog.public_entries()]


def test_disabled_provider_removes_routes_and_models():
    cat = Catalog(_config(), disabled_providers=frozenset({"b"}))
    assert [r.provider for r in cat.routes(cat.resolve("mid").model)] == ["a"]
    assert "big" not in [e.model.id for e in cat.models()]
    assert select(cat, _req(PROMPTS["complex"]), mode="sport").entry.model.id == "mid"
