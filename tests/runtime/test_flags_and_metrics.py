"""gateway.runtime.flags (file defaults, stored overrides, catalog rebuilt at once) and
gateway.runtime.metrics (counters, bounded labels, Prometheus text)."""
from __future__ import annotations

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import store
from gateway import errors
from gateway.config import parse_config
from gateway.runtime.flags import FlagState, ProviderFlags, build_catalog
from gateway.runtime.metrics import BUCKETS, Metrics, ProviderGauge, route_label


def _config(**provider):
    return parse_config({
        "providers": [{"id": "a", "kind": "simulator", "images": True, **provider},
                      {"id": "b", "kind": "simulator", "enabled": False}],
        "models": [
            {"id": "m-a", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0,
             "routes": [{"provider": "a", "model": "x"}]},
            {"id": "m-b", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0,
             "routes": [{"provider": "b", "model": "y"}]},
            {"id": "m-ab", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0,
             "routes": [{"provider": "a", "model": "x"}, {"provider": "b", "model": "y"}]},
        ]})


def _visible(catalog) -> set[str]:
    return {e.public_id for e in catalog.public_entries()}


async def test_flags_layer_overrides_on_the_file_and_rebuild_the_catalog(tmp_path):
    writer = store.Writer(str(tmp_path / "prism.db"))
    writer.start()
    try:
        config = _config()
        holder: dict = {}
        flags = ProviderFlags(writer, config,
                              on_change=lambda: holder.update(catalog=build_catalog(config, flags)))
        await flags.load()
        assert flags.state("a") == FlagState(True, True, False)
        assert flags.state("b") == FlagState(False, False, False)
        assert _visible(holder["catalog"]) == {"m-a", "m-ab"}
        assert [r.provider for r in holder["catalog"].routes(config.models[2])] == ["a"]

        # An operator re-enables b (disabled in the file) and disables a.
        await flags.set("b", actor="t", enabled=True)
        await flags.set("a", actor="t", enabled=False)
        assert _visible(holder["catalog"]) == {"m-b", "m-ab"}
        assert flags.disabled() == frozenset({"a"})
        # images() is False for a disabled provider even though its flag is on.
        assert flags.state("a").images is True and flags.images("a") is False
        assert flags.images("nope") is False and flags.video("nope") is False
        with pytest.raises(errors.NotFound):
            await flags.set("nope", actor="t", images=True)
        with pytest.raises(errors.InvalidRequest):
            await flags.set("a", actor="t")

        # Concurrent changes end in the order they were persisted.
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(lambda v: flags.set("a", actor="t", video=v), i % 2 == 0)
        stored = await writer.call(store.load_provider_flags)
        assert stored["a"]["video"] == flags.state("a").video

        # A fresh process sees the same; a reload's new defaults apply where no override is.
        again = ProviderFlags(writer, _config(video=True))
        await again.load()
        assert again.state("a") == flags.state("a") and again.state("b").enabled is True
        again.reconfigure(_config(images=False))
        assert again.state("a").images is False  # never overridden: follows the file
    finally:
        writer.close()


def test_metrics_counts_and_bounds_labels():
    m = Metrics(["prism-mini"])
    m.observe({"route": "/v1/chat/completions", "model": "prism-mini", "status": 200,
               "latency_ms": 10.0, "tokens_in": 5, "tokens_out": 7, "cached_tokens": 1,
               "cost_micros": 12, "provider": "up"})
    m.observe({"route": "/v1beta/models/gemini-x:generateContent", "model": "made-up-name",
               "status": 404, "latency_ms": 0.4, "provider": None})
    m.observe({"route": "/v1/chat/completions", "model": "prism-mini", "status": 502,
               "latency_ms": BUCKETS[-1] * 2000, "provider": "up"})
    m.observe({"route": "/v1/chat/completions", "model": "prism-mini", "status": 499,
               "latency_ms": 5.0, "provider": "up"})
    assert ("/v1beta/models/{model}:generateContent", "other", "404") in m.requests
    assert m.upstream_errors == {"up": 1}
    assert m.recent("up") == {"requests": 3, "errors": 1, "window_seconds": 300}
    text = m.render(open_holds=4, providers=[ProviderGauge("up", True),
                                             ProviderGauge("down", False, "open")])
    families = {f.name: f for f in text_string_to_metric_families(text)}
    hist = [s for s in families["prism_request_duration_seconds"].samples
            if s.labels.get("route") == "/v1/chat/completions"]
    inf = [s.value for s in hist if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
    top = [s.value for s in hist if s.name.endswith("_bucket")
           and s.labels["le"] == str(BUCKETS[-1])]
    assert inf == [3] and top == [2]  # the slow one only counts in +Inf
    assert 'prism_upstream_errors_total{provider="down"} 0' in text
    assert 'prism_circuit_breaker_state{provider="down",state="open"} 1' in text
    assert 'prism_tokens_total{direction="cached"} 1' in text
    assert "prism_open_holds 4" in text
    with pytest.raises(ValueError):
        ProviderGauge("x", True, "melted")


def test_recent_window_forgets_old_requests():
    now = [1000.0]
    m = Metrics(clock=lambda: now[0])
    m.observe({"route": "/r", "status": 502, "provider": "p"})
    now[0] += 301
    m.observe({"route": "/r", "status": 200, "provider": "p"})
    assert m.recent("p") == {"requests": 1, "errors": 0, "window_seconds": 300}
    assert m.upstream_errors["p"] == 1  # the counter itself never forgets


def test_route_label():
    assert route_label("/v1beta/models/x:streamGenerateContent") == \
        "/v1beta/models/{model}:streamGenerateContent"
    assert route_label("/v1/chat/completions") == "/v1/chat/completions"


def test_recent_window_keeps_one_bucket_per_second_however_many_requests():
    now = [1000.0]
    m = Metrics(clock=lambda: now[0])
    for i in range(30000):   # 100 requests a "second" for 300 seconds
        now[0] = 1000.0 + i / 100
        m.observe({"route": "/r", "status": 502 if i % 10 == 0 else 200, "provider": "p"})
    assert len(m._recent["p"]) <= 301
    got = m.recent("p")
    assert got["requests"] == 30000 and got["errors"] == 3000
