"""Shadow traffic over real sockets: the primary answers the client exactly as without
a shadow, the shadow call happens afterwards on the operator's account, and
/-/shadow/stats reports it per model pair."""
from __future__ import annotations

import socket
import time

import httpx
import pytest

import harness

OPERATOR = "acct_shadow_operator"


@pytest.fixture
def sim():
    s = harness.start_simulator()
    yield s
    s.stop()


@pytest.fixture
def black_hole():
    """A port that accepts connections and never answers: a shadow route that hangs
    until its read timeout, then fails."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    yield sock.getsockname()[1]
    sock.close()


def _models(shadow_model: str, rate: float = 1.0) -> list[dict]:
    return [
        {"id": "prism-mini", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
         "max_output_tokens": 200, "capabilities": ["chat"],
         "routes": [{"provider": "up", "model": "sim-mini"}],
         "shadow": {"model": shadow_model, "sample_rate": rate}},
        {"id": "prism-big", "input_usd_per_mtok": 10.0, "output_usd_per_mtok": 30.0,
         "max_output_tokens": 200, "capabilities": ["chat"],
         "routes": [{"provider": "up", "model": "sim-big"}]},
        {"id": "prism-hang", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
         "max_output_tokens": 200, "capabilities": ["chat"],
         "routes": [{"provider": "hang", "model": "hang-model"}]},
    ]


def _providers(sim_url: str, hang_port: int) -> list[dict]:
    return [{"id": "up", "kind": "openai", "base_url": sim_url + "/v1",
             "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "read_timeout": 30.0},
            {"id": "hang", "kind": "openai", "base_url": f"http://127.0.0.1:{hang_port}/v1",
             "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "read_timeout": 1.5,
             "connect_timeout": 1.0}]


def _stats(gw, want: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = gw.admin.get("/-/shadow/stats").json()
        if sum(p["requests"] for p in stats["pairs"]) >= want and stats["queued"] == 0:
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.1)


def _balance(gw, key: str) -> int:
    r = httpx.get(gw.url + "/v1/balance", headers={"authorization": f"Bearer {key}"})
    return round(float(r.json()["balance_usd"]) * 1_000_000)


def _spent(gw, key: str) -> tuple[int, int]:
    """(rows, micro-USD) of the customer's usage rows."""
    usage = httpx.get(gw.url + "/v1/usage", headers={"authorization": f"Bearer {key}"}).json()
    assert {row["model"] for row in usage["data"]} <= {"prism-mini"}
    return usage["total"], sum(row["cost_micros"] for row in usage["data"])


def _ask(gw, key: str, text: str, stream: bool = False) -> tuple[httpx.Response, float, str]:
    body = {"model": "prism-mini", "messages": [{"role": "user", "content": text}],
            "max_tokens": 50, "stream": stream}
    started = time.monotonic()
    with httpx.Client(base_url=gw.url, timeout=30,
                      headers={"authorization": f"Bearer {key}"}) as client:
        if stream:
            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                text_out = r.read().decode()
        else:
            r = client.post("/v1/chat/completions", json=body)
            text_out = r.text
    return r, time.monotonic() - started, text_out


def test_failing_shadow_changes_nothing_for_the_client(sim, black_hole, tmp_path,
                                                       store_overrides):
    gw = harness.start_gateway(tmp_path, sim.url, providers=_providers(sim.url, black_hole),
                               models=_models("prism-hang"), store=store_overrides)
    try:
        r = gw.admin.post(f"/-/accounts/{OPERATOR}/wallet",
                          json={"amount_usd": 5.0, "reason": "shadow budget"})
        assert r.status_code == 200, r.text
        key = gw.create_key(credits_usd=10.0)["key"]
        start = _balance(gw, key)
        direct = httpx.post(sim.url + "/v1/chat/completions",
                            headers={"authorization": "Bearer x"},
                            json={"model": "sim-mini", "max_tokens": 50,
                                  "messages": [{"role": "user", "content": "shadow me 0"}]}).json()
        for i in range(4):
            r, took, text = _ask(gw, key, f"shadow me {i}", stream=i % 2 == 1)
            assert r.status_code == 200, text
            # The shadow hangs for 1.5 s before failing; the client never waits for it.
            assert took < 1.0, took
            if i % 2 == 1:
                assert text.rstrip().endswith("data: [DONE]")
            elif i == 0:
                assert r.json()["choices"][0]["message"]["content"] == \
                    direct["choices"][0]["message"]["content"]
        stats = _stats(gw, 4)
        rows, paid = _spent(gw, key)
        assert rows == 4 and paid > 0
        (pair,) = stats["pairs"]
        assert (pair["model"], pair["shadow_model"]) == ("prism-mini", "prism-hang")
        assert pair["requests"] == 4 and pair["errors"] == 4
        assert pair["shadow_cost_micros"] == 0 and pair["similarity_avg"] is None
        assert pair["primary_cost_micros"] == paid
        # The customer paid for the primary answers only; the failed shadows cost the
        # operator nothing (their holds were voided).
        assert start - _balance(gw, key) == paid
        assert stats["operator_account"] == {"id": OPERATOR, "balance_micros": 5_000_000,
                                             "held_micros": 0}
    finally:
        gw.stop()


def test_shadow_stats_report_deltas_and_similarity_on_the_operator_account(
        sim, black_hole, tmp_path, store_overrides):
    gw = harness.start_gateway(tmp_path, sim.url, providers=_providers(sim.url, black_hole),
                               models=_models("prism-big"),
                               store=store_overrides)
    try:
        gw.admin.post(f"/-/accounts/{OPERATOR}/wallet", json={"amount_usd": 5.0, "reason": "t"})
        key = gw.create_key(credits_usd=10.0)["key"]
        start = _balance(gw, key)
        for i in range(3):
            r, _, text = _ask(gw, key, f"compare these outputs {i}", stream=i == 2)
            assert r.status_code == 200, text
        stats = _stats(gw, 3)
        rows, paid = _spent(gw, key)
        assert rows == 3
        (pair,) = stats["pairs"]
        assert (pair["model"], pair["shadow_model"]) == ("prism-mini", "prism-big")
        assert pair["requests"] == 3 and pair["errors"] == 0 and pair["compared"] == 3
        assert 0.0 <= pair["similarity_avg"] <= 1.0
        assert pair["shadow_cost_micros"] > pair["primary_cost_micros"] == paid
        assert pair["cost_delta_micros"] == pair["shadow_cost_micros"] - paid
        assert pair["shadow_latency_ms_avg"] is not None
        assert start - _balance(gw, key) == paid
        operator = stats["operator_account"]
        assert operator["balance_micros"] == 5_000_000 - pair["shadow_cost_micros"]
    finally:
        gw.stop()


def test_shadow_config_is_validated(tmp_path):
    from gateway.config import ConfigError, parse_config
    cfg = harness.gateway_config(tmp_path, None)
    cfg["models"][0]["shadow"] = {"model": "prism-mini", "sample_rate": 1.5}
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert "models[0].shadow.model" in str(info.value)
    assert "models[0].shadow.sample_rate" in str(info.value)
