"""Operator routes under /-/: config, reload, metrics, provider health and flags, wallet."""
from __future__ import annotations

import os

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import harness
import store

CHAT = {"model": "prism-mini", "messages": [{"role": "user", "content": "say: hi"}]}


def _chat(gw, key: str, model: str = "prism-mini") -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "model": model},
                      headers={"authorization": f"Bearer {key}"}, timeout=30)


def _db(gw, fn, *args, **kw):
    db = gw.db()
    try:
        return fn(db, *args, **kw)
    finally:
        db.close()


@pytest.fixture(scope="module")
def ops_gateway(tmp_path_factory):
    secret = "sk-upstream-super-secret-value"
    os.environ["PRISM_TEST_OPS_KEY"] = secret
    extra = {"id": "vault", "kind": "openai", "api_key_env": "PRISM_TEST_OPS_KEY",
             "base_url": "https://operator:hunter2@upstream.invalid/v1"}
    unset = {"id": "bare", "kind": "openai", "api_key_env": "PRISM_TEST_UNSET_KEY",
             "base_url": "https://upstream.invalid/v1"}
    base = harness.gateway_config(tmp_path_factory.getbasetemp(), None)
    gw = harness.start_gateway(tmp_path_factory.mktemp("ops"), None,
                               providers=base["providers"] + [extra, unset])
    yield gw
    gw.stop()
    del os.environ["PRISM_TEST_OPS_KEY"]


def test_routes_need_the_admin_token(ops_gateway):
    for method, path in [("GET", "/-/config"), ("POST", "/-/reload"), ("GET", "/-/metrics"),
                         ("GET", "/-/health/providers"), ("PUT", "/-/providers/up/flags"),
                         ("PATCH", "/-/providers/up/flags"),
                         ("POST", "/-/accounts/acct_x/wallet")]:
        r = httpx.request(method, ops_gateway.url + path, json={})
        assert r.status_code == 401, (method, path, r.text)


def test_config_summary_redacts_secrets(ops_gateway):
    r = ops_gateway.admin.get("/-/config")
    assert r.status_code == 200
    text = r.text
    assert "super-secret" not in text and "hunter2" not in text
    providers = {p["id"]: p for p in r.json()["providers"]}
    assert providers["vault"]["api_key_env"] == "PRISM_TEST_OPS_KEY"
    assert providers["vault"]["api_key_set"] is True
    assert providers["bare"]["api_key_set"] is False
    assert providers["vault"]["base_url"] == "https://***@upstream.invalid/v1"
    assert providers["up"]["effective"] == {"enabled": True, "images": False, "video": False}
    body = r.json()
    assert body["admin_token_set"] is True and body["config_path"] is None
    assert {m["id"] for m in body["models"]} >= {"prism-mini", "prism-big"}


def test_metrics_parse_as_prometheus_text(ops_gateway):
    gw = ops_gateway
    key = gw.create_key()
    assert _chat(gw, key["key"]).status_code == 200
    assert _chat(gw, key["key"]).status_code == 200
    assert _chat(gw, key["key"], "no-such-model").status_code == 404
    r = gw.admin.get("/-/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {"prism_requests", "prism_request_duration_seconds", "prism_tokens",
            "prism_cost_micros", "prism_open_holds", "prism_upstream_errors",
            "prism_provider_enabled", "prism_circuit_breaker_state"} <= set(families)

    def sample(family: str, name: str, **labels) -> float:
        hits = [s.value for s in families[family].samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(hits) == 1, (family, labels, hits)
        return hits[0]

    route = "/v1/chat/completions"
    assert sample("prism_requests", "prism_requests_total", route=route, model="prism-mini",
                  status="200") >= 2
    # A made-up model name must not become a label value of its own.
    assert sample("prism_requests", "prism_requests_total", route=route, model="other",
                  status="404") >= 1
    buckets = [s for s in families["prism_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["route"] == route]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
    assert counts[-1] == sample("prism_request_duration_seconds",
                                "prism_request_duration_seconds_count", route=route)
    assert sample("prism_tokens", "prism_tokens_total", direction="in") > 0
    assert sample("prism_cost_micros", "prism_cost_micros_total") > 0
    assert sample("prism_open_holds", "prism_open_holds") == 0
    assert sample("prism_provider_enabled", "prism_provider_enabled", provider="up") == 1
    assert sample("prism_upstream_errors", "prism_upstream_errors_total", provider="up") == 0
    assert sample("prism_circuit_breaker_state", "prism_circuit_breaker_state",
                  provider="up", state="closed") == 1


def test_upstream_errors_are_counted_by_provider(sim_url, tmp_path):
    gw = harness.start_gateway(tmp_path, sim_url, routing={"breaker_failures": 1})
    try:
        key = gw.create_key()
        r = httpx.post(gw.url + "/v1/chat/completions", timeout=30,
                       json={"model": "prism-mini", "messages": [
                           {"role": "user", "content": "[[sim status=500]] say: x"}]},
                       headers={"authorization": f"Bearer {key['key']}"})
        assert r.status_code == 502, r.text
        text = gw.admin.get("/-/metrics").text
        assert 'prism_upstream_errors_total{provider="up"} 1' in text
        health = gw.admin.get("/-/health/providers").json()["providers"][0]
        assert health["recent"]["errors"] == 1 and health["recent"]["requests"] == 1
        # One failure opens the route's breaker (breaker_failures = 1), and it shows.
        assert health["breaker"] == "open"
        route = next(r for r in health["routes"] if r["upstream_model"] == "sim-mini")
        assert route["state"] == "open" and route["failures"] == 1
        assert 'prism_circuit_breaker_state{provider="up",state="open"} 1' in text
    finally:
        gw.stop()


def test_flags_route_and_health(tmp_path):
    gw = harness.start_gateway(tmp_path, None)
    try:
        key = gw.create_key()
        r = gw.admin.put("/-/providers/up/flags", json={"images": True})
        assert r.status_code == 200 and r.json()["images"] is True
        health = gw.admin.get("/-/health/providers").json()["providers"]
        assert health[0]["images"] is True and health[0]["breaker"] == "closed"
        r = gw.admin.patch("/-/providers/up/flags", json={"enabled": False})
        assert r.json() == {"id": "up", "enabled": False, "images": True, "video": False,
                            "overridden": {"enabled": False, "images": True}}
        assert _chat(gw, key["key"]).status_code == 404
        assert 'prism_provider_enabled{provider="up"} 0' in gw.admin.get("/-/metrics").text
        gw.admin.patch("/-/providers/up/flags", json={"enabled": True})
        assert _chat(gw, key["key"]).status_code == 200

        assert gw.admin.put("/-/providers/nope/flags", json={"images": True}).status_code == 404
        for bad in ({}, {"images": "yes"}, {"colour": True}):
            r = gw.admin.put("/-/providers/up/flags", json=bad)
            assert r.status_code == 400, (bad, r.text)
        audit = _db(gw, store.audit_log, action="provider.flags")
        assert len(audit) == 3 and audit[0]["actor"].startswith("admin-http:")
        row = _db(gw, lambda db: store.ProviderFlag.get_by_id("up"))
        assert (row.enabled, row.images, row.video) == (True, True, None)
    finally:
        gw.stop()


def test_wallet_route(ops_gateway):
    gw = ops_gateway
    key = gw.create_key(credits_usd=1.0)
    acct = key["account_id"]
    r = gw.admin.post(f"/-/accounts/{acct}/wallet", json={"amount_usd": 2.5, "reason": "promo"})
    assert r.status_code == 200 and r.json()["balance_micros"] == 3_500_000
    assert r.json()["balance_usd"] == "3.500000"
    r = gw.admin.post(f"/-/accounts/{acct}/wallet", json={"amount_usd": -0.5, "reason": "fix"})
    assert r.json()["balance_micros"] == 3_000_000
    r = gw.admin.post(f"/-/accounts/{acct}/wallet", json={"amount_usd": -4, "reason": "no"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "would_go_negative"
    assert gw.admin.post(f"/-/accounts/{acct}/wallet",
                         json={"amount_usd": 1}).status_code == 400  # reason required
    assert gw.admin.post(f"/-/accounts/{acct}/wallet",
                         json={"amount_usd": 0, "reason": "x"}).status_code == 400
    assert gw.admin.post("/-/accounts/acct_none/wallet",
                         json={"amount_usd": 1, "reason": "x"}).status_code == 404
    rows = _db(gw, store.ledger_rows, acct)
    assert [(r.kind, r.amount_micros, r.reason) for r in rows] == [
        ("topup", 1_000_000, "opening credits"), ("topup", 2_500_000, "promo"),
        ("adjust", -500_000, "fix")]
    audit = [a for a in _db(gw, store.audit_log, action="wallet.adjust")
             if a["detail"]["account_id"] == acct]
    assert len(audit) == 2


# ---------------------------------------------------------------- reload

_TOML = """
[server]
host = "127.0.0.1"
port = 0
shutdown_grace = 2.0

[store]
path = "prism.db"
sweep_interval = 3600.0

[control]
socket = "prism.sock"

[bootstrap]
dev_key = false

[[providers]]
id = "up"
kind = "simulator"

[[models]]
id = "prism-mini"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
max_output_tokens = 1000
routes = [{ provider = "up", model = "sim-mini" }]
"""

_EXTRA_MODEL = """
[[providers]]
id = "second"
kind = "simulator"

[[models]]
id = "prism-new"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
routes = [{ provider = "second", model = "sim-new" }]
"""


def test_reload(tmp_path):
    path = tmp_path / "prism.toml"
    path.write_text(_TOML)
    gw = harness.start_gateway(tmp_path, None, config_path=str(path))
    try:
        key = gw.create_key()
        assert gw.admin.get("/-/config").json()["config_path"] == str(path)
        assert _chat(gw, key["key"], "prism-new").status_code == 404

        # A broken file: 400 with every problem, and the gateway carries on unchanged.
        path.write_text(_TOML.replace('kind = "simulator"', 'kind = "telepathy"')
                        + '\n[[models]]\nid = "x"\nroutes = [{ provider = "ghost", model = "y" }]\n')
        r = gw.admin.post("/-/reload")
        assert r.status_code == 400
        problems = r.json()["error"]["problems"]
        assert any("providers[0].kind" in p for p in problems)
        assert any("ghost" in p for p in problems)
        assert _chat(gw, key["key"]).status_code == 200
        assert [p["id"] for p in gw.admin.get("/-/config").json()["providers"]] == ["up"]
        path.write_text("this is [not toml")
        r = gw.admin.post("/-/reload")
        assert r.status_code == 400 and "TOML" in r.json()["error"]["problems"][0]

        # A good file: new provider and model served at once; a port change needs a restart.
        path.write_text(_TOML.replace("port = 0", "port = 1") + _EXTRA_MODEL)
        r = gw.admin.post("/-/reload")
        assert r.status_code == 200, r.text
        assert r.json() == {"ok": True, "problems": [], "added": ["second"], "removed": [],
                            "rebuilt": [], "restart_required": ["server"]}
        assert _chat(gw, key["key"], "prism-new").status_code == 200
        assert gw.admin.get("/-/metrics").text.count('prism_provider_enabled{provider="second"} 1') == 1

        # Flags set before a reload survive it; removing a provider takes its models away.
        assert gw.admin.put("/-/providers/up/flags", json={"video": True}).status_code == 200
        path.write_text(_TOML)
        r = gw.admin.post("/-/reload")
        assert r.json()["removed"] == ["second"] and r.json()["restart_required"] == []
        assert _chat(gw, key["key"], "prism-new").status_code == 404
        assert gw.admin.get("/-/health/providers").json()["providers"][0]["video"] is True
        audit = _db(gw, store.audit_log, action="config.reload")
        assert [a["detail"]["ok"] for a in reversed(audit)] == [False, False, True, True]
    finally:
        gw.stop()


def test_reload_without_a_file_is_refused(ops_gateway):
    r = ops_gateway.admin.post("/-/reload")
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_config_path"
