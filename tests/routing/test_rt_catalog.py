"""Public model ids and aliases -> model and routes; disabled things are invisible."""
from __future__ import annotations

import pytest

from gateway import errors
from gateway.billing.pricing import TokenPrice
from gateway.config import parse_config
from gateway.routing.catalog import Catalog


def _config(**changes):
    data = {
        "providers": [
            {"id": "a", "kind": "simulator"},
            {"id": "b", "kind": "simulator"},
            {"id": "off", "kind": "simulator", "enabled": False},
        ],
        "models": [
            {"id": "m-one", "aliases": ["one", "uno"], "input_usd_per_mtok": 1.0,
             "output_usd_per_mtok": 2.0, "cached_input_usd_per_mtok": 0.5,
             "routes": [{"provider": "a", "model": "up-1"}, {"provider": "b", "model": "up-1b"}]},
            {"id": "m-two", "input_usd_per_mtok": 3.0, "output_usd_per_mtok": 4.0,
             "routes": [{"provider": "off", "model": "x"}, {"provider": "b", "model": "up-2"}]},
            {"id": "m-disabled", "aliases": ["dis"], "enabled": False,
             "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0,
             "routes": [{"provider": "a", "model": "x"}]},
            {"id": "m-dead", "aliases": ["dead"], "input_usd_per_mtok": 1.0,
             "output_usd_per_mtok": 1.0, "routes": [{"provider": "off", "model": "x"}]},
            {"id": "m-unpriced", "input_usd_per_mtok": 1.0,
             "routes": [{"provider": "a", "model": "free"}]},
        ],
    }
    data.update(changes)
    return parse_config(data)


@pytest.fixture
def catalog():
    return Catalog(_config())


def test_id_and_every_alias_resolve_to_the_same_model(catalog):
    entries = [catalog.resolve(n) for n in ("m-one", "one", "uno")]
    assert [e.public_id for e in entries] == ["m-one", "one", "uno"]
    assert all(e.model.id == "m-one" for e in entries)
    assert entries[1].model is entries[0].model


def test_entry_carries_the_integer_price(catalog):
    assert catalog.resolve("one").price == TokenPrice(1_000_000, 2_000_000, 500_000)
    assert catalog.resolve("m-two").price == TokenPrice(3_000_000, 4_000_000, 3_000_000)


def test_model_without_both_token_prices_has_no_price(catalog):
    assert catalog.resolve("m-unpriced").price is None


def test_routes_keep_config_order_without_disabled_providers(catalog):
    one = catalog.resolve("m-one").model
    assert [(r.provider, r.model) for r in catalog.routes(one)] == [("a", "up-1"), ("b", "up-1b")]
    two = catalog.resolve("m-two").model
    assert [r.provider for r in catalog.routes(two)] == ["b"]


@pytest.mark.parametrize("name", ["m-disabled", "dis", "m-dead", "dead", "nope", "", "M-ONE",
                                  "any"])
def test_invisible_or_unknown_names_are_model_not_found(catalog, name):
    with pytest.raises(errors.ModelNotFound) as info:
        catalog.resolve(name)
    err = info.value
    assert err.status == 404 and err.type_name == "model_not_found"
    assert err.code == "model_not_found"
    assert repr(name) in err.message


def test_disabled_and_unknown_read_the_same(catalog):
    """A disabled model must not be distinguishable from a missing one."""
    def message(name):
        with pytest.raises(errors.ModelNotFound) as info:
            catalog.resolve(name)
        return info.value.message.replace(repr(name), "<name>")
    assert message("m-disabled") == message("never-existed") == message("dead")


def test_listing_shows_visible_ids_and_aliases_in_config_order(catalog):
    names = [e.public_id for e in catalog.public_entries()]
    assert names == ["m-one", "one", "uno", "m-two", "m-unpriced"]


def test_providers_disabled_at_runtime_hide_models_that_only_use_them():
    cat = Catalog(_config(), disabled_providers=frozenset({"b"}))
    assert [r.provider for r in cat.routes(cat.resolve("m-one").model)] == ["a"]
    with pytest.raises(errors.ModelNotFound):
        cat.resolve("m-two")                    # its only enabled route was via b
    assert "m-two" not in [e.public_id for e in cat.public_entries()]
    # the config is not changed by it: a fresh catalog sees m-two again
    assert Catalog(_config()).resolve("m-two").model.id == "m-two"


def test_every_provider_disabled_means_an_empty_catalog():
    cat = Catalog(_config(), disabled_providers=frozenset({"a", "b"}))
    assert cat.public_entries() == []
    with pytest.raises(errors.ModelNotFound):
        cat.resolve("one")


def test_shipped_config_catalog():
    from pathlib import Path

    from gateway.config import load_config
    cfg = load_config(Path(__file__).resolve().parents[2] / "prism.toml")
    cat = Catalog(cfg)
    assert cat.resolve("mini").model.id == "prism-mini"
    assert cat.resolve("mini").price is not None
    listed = [e.public_id for e in cat.public_entries()]
    assert "prism-mini" in listed and "mini" in listed
    for m in cfg.models:           # per-generation models carry no token price
        if m.input_usd_per_mtok is None:
            assert cat.resolve(m.id).price is None
