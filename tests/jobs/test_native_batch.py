"""Batches sent to the upstream's own batch API (providers with native_batch = true),
through the official openai SDK against a running gateway and the HTTP simulator's batch
APIs: OpenAI files + batches, Anthropic message batches, Gemini batchGenerateContent.

Each batch goes upstream as one submission holding every line and no line-by-line call;
its output and error files match every custom_id; each succeeded line is billed once at
the batch multiplier from the usage the provider reported, errored lines not at all; a
cancel is forwarded upstream and bills only what the upstream finished; an upstream that
refuses the batch sends the lines line by line instead."""
from __future__ import annotations

import re
import time

import httpx
import openai
import pytest

import harness
import store
import store.batch_native
from tests.jobs import setup
from tests.jobs.test_batches import _chat, _jsonl, _upload, wait

KINDS = ("openai", "anthropic", "gemini")
JOBS = {**setup.JOBS, "native_poll_interval": 0.1}


@pytest.fixture(scope="module")
def sim():
    s = harness.start_simulator()
    yield s.url
    s.stop()


def config(tmp, sim_url: str) -> dict:
    base = harness.gateway_config(tmp, sim_url, upstream_kinds=KINDS)
    providers = [{**p, "native_batch": p["id"].startswith("sim-")} for p in base["providers"]]
    return {"providers": providers, "models": base["models"] + [setup.EMBED]}


@pytest.fixture(scope="module")
def gw(sim, tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("jobs-native")
    g = harness.start_gateway(tmp, sim, jobs=JOBS, store=setup.store_for(request),
                              **config(tmp, sim))
    yield g
    g.stop()


def sim_stats(sim: str) -> dict:
    return httpx.get(sim + "/_sim/stats").json()


def sim_config(sim: str, **cfg) -> None:
    httpx.post(sim + "/_sim/batches/config", json=cfg).raise_for_status()


def _oa(gw, key) -> openai.OpenAI:
    """A client with a fresh connection pool: call again after a test has let its
    connection idle past the server's keep-alive timeout (a reused connection the
    server is closing at that moment fails with a connection error)."""
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)


def _billed(usage: dict) -> int:
    """The batch price of a via-* line: $1 in, $2 out per Mtok, at multiplier 0.5."""
    return int((usage["prompt_tokens"] + 2 * usage["completion_tokens"]) * 0.5)


def _settles(db, account_id: str) -> dict[str, int]:
    """setup.settles with a re-held line's hold (request id '#r<n>') named as its line."""
    return {re.sub(r"#r\d+$", "", k): v for k, v in setup.settles(db, account_id).items()}


def check_ledger(gw, key: dict, out: dict[str, dict]) -> None:
    db = gw.db()
    try:
        settles = _settles(db, key["account_id"])
        assert set(settles) == {r["response"]["request_id"] for r in out.values()}
        for r in out.values():
            body = r["response"]["body"]
            assert settles[r["response"]["request_id"]] == _billed(body["usage"])
        assert store.check_invariants(db) == []
        assert store.count_open_holds(db) == 0
    finally:
        db.close()


@pytest.mark.parametrize("kind", KINDS)
def test_batch_goes_native_once_and_settles_at_batch_price(gw, sim, kind):
    sim_config(sim, delay=0.6, refuse=False)
    before = sim_stats(sim)
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    lines = [_chat(f"{kind}/{i}", f"say: hello {i}", model=f"via-{kind}") for i in range(7)]
    lines.append(_chat(f"{kind}/bad", "fail me [[sim status=400]]", model=f"via-{kind}"))
    batch = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                              completion_window="24h")
    done = wait(oa, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 8 and done.request_counts.completed == 7
    assert done.request_counts.failed == 1
    after = sim_stats(sim)
    nb0, nb1 = before["native_batches"], after["native_batches"]
    assert nb1["submissions"][kind] - nb0["submissions"][kind] == 1
    assert nb1["lines"][kind] - nb0["lines"][kind] == 8
    assert after["requests"] == before["requests"]          # nothing went line by line
    out, err = _jsonl(oa, done.output_file_id), _jsonl(oa, done.error_file_id)
    assert set(out) == {ln["custom_id"] for ln in lines[:7]}
    assert set(err) == {f"{kind}/bad"}
    for i in range(7):
        body = out[f"{kind}/{i}"]["response"]["body"]
        assert body["object"] == "chat.completion" and body["model"] == f"via-{kind}"
        assert body["choices"][0]["message"]["content"] == f"hello {i}"
    bad = err[f"{kind}/bad"]["response"]
    assert bad["status_code"] == 400 and bad["body"]["error"]["type"] == "invalid_request"
    check_ledger(gw, key, out)
    view = gw.admin.get(f"/-/batches/{batch.id}").json()["native_batches"]
    assert [(v["provider"], v["state"], v["lines"]) for v in view] == [(f"sim-{kind}", "collected", 8)]
    assert view[0]["upstream_id"]
    assert "native_batches" not in oa.batches.retrieve(batch.id).model_extra
    assert done.model_extra["cost_micros"] == sum(_billed(r["response"]["body"]["usage"])
                                                  for r in out.values())


def test_mixed_batch_splits_native_and_line_by_line(gw, sim):
    """Lines for a native provider go upstream in one batch per upstream model; lines
    for the others (prism-mini on the plain provider, embeddings) run one by one."""
    sim_config(sim, delay=0.3, refuse=False)
    before = sim_stats(sim)
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    lines = ([_chat(f"a-{i}", f"say: a{i}", model="via-anthropic") for i in range(3)]
             + [_chat(f"g-{i}", f"say: g{i}", model="via-gemini") for i in range(2)]
             + [_chat(f"m-{i}", f"say: m{i}", model="prism-mini") for i in range(3)])
    batch = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                              completion_window="24h")
    done = wait(oa, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 8
    nb0, nb1 = before["native_batches"], sim_stats(sim)["native_batches"]
    assert nb1["submissions"]["anthropic"] - nb0["submissions"]["anthropic"] == 1
    assert nb1["submissions"]["gemini"] - nb0["submissions"]["gemini"] == 1
    assert sim_stats(sim)["requests"] - before["requests"] == 3    # prism-mini only
    out = _jsonl(oa, done.output_file_id)
    assert set(out) == {ln["custom_id"] for ln in lines}
    db = gw.db()
    try:
        settles = _settles(db, key["account_id"])
        assert set(settles) == {r["response"]["request_id"] for r in out.values()}
        for cid, r in out.items():
            if not cid.startswith("m-"):
                assert settles[r["response"]["request_id"]] == _billed(r["response"]["body"]["usage"])
        assert store.check_invariants(db) == [] and store.count_open_holds(db) == 0
    finally:
        db.close()


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_is_forwarded_and_bills_only_finished_lines(gw, sim, kind):
    sim_config(sim, delay=4.0, cancel_delay=0.3, refuse=False)
    before = sim_stats(sim)["native_batches"]
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    lines = [_chat(f"c{i}", f"say: c{i}", model=f"via-{kind}") for i in range(10)]
    batch = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                              completion_window="24h")
    deadline = time.monotonic() + 20
    while sim_stats(sim)["native_batches"]["submissions"][kind] == before["submissions"][kind]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)            # about a third of the lines finish upstream
    oa = _oa(gw, key)
    assert oa.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    done = wait(oa, batch.id)
    assert done.status == "cancelled"
    assert sim_stats(sim)["native_batches"]["cancels"] - before["cancels"] == 1
    out, err = _jsonl(oa, done.output_file_id), _jsonl(oa, done.error_file_id)
    assert set(out) | set(err) == {ln["custom_id"] for ln in lines}
    assert 1 <= len(out) < 10, (len(out), len(err))
    for r in err.values():
        assert r["error"]["code"] == "batch_cancelled"
    check_ledger(gw, key, out)


def test_refused_native_batch_falls_back_to_line_by_line(gw, sim):
    sim_config(sim, delay=0.3, refuse=True)
    try:
        before = sim_stats(sim)
        key = gw.create_key(credits_usd=5.0)
        oa = _oa(gw, key)
        lines = [_chat(f"f{i}", f"say: f{i}", model="via-openai") for i in range(4)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        done = wait(oa, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 4
        after = sim_stats(sim)
        assert after["native_batches"]["submissions"] == before["native_batches"]["submissions"]
        assert after["requests"] - before["requests"] == 4
        out = _jsonl(oa, done.output_file_id)
        check_ledger(gw, key, out)
    finally:
        sim_config(sim, refuse=False)


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_failed_upstream_batch_runs_its_lines_line_by_line(gw, sim, kind):
    """An upstream batch that ends failed (validation upstream) ran nothing: its holds
    are voided and its lines run line by line, each billed once."""
    sim_config(sim, delay=0.2, refuse=False, fail=True)
    try:
        before = sim_stats(sim)
        key = gw.create_key(credits_usd=5.0)
        oa = _oa(gw, key)
        lines = [_chat(f"x{i}", f"say: x{i}", model=f"via-{kind}") for i in range(3)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        done = wait(oa, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 3
        after = sim_stats(sim)
        nb0, nb1 = before["native_batches"], after["native_batches"]
        assert nb1["submissions"][kind] - nb0["submissions"][kind] == 1
        assert after["requests"] - before["requests"] == 3
        check_ledger(gw, key, _jsonl(oa, done.output_file_id))
    finally:
        sim_config(sim, fail=False)


class Clock:
    """The wall clock, plus whatever a test adds."""
    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


def test_upstream_batch_past_the_completion_window_expires(sim, tmp_path, request):
    """Past the batch's 24 h window the upstream batch is cancelled and the batch
    expires: what the upstream finished is billed, the rest is batch_expired."""
    clock = Clock()
    g = harness.start_gateway(tmp_path, sim, jobs=JOBS, store=setup.store_for(request),
                              clock=clock, **config(tmp_path, sim))
    try:
        sim_config(sim, delay=6.0, cancel_delay=0.2, refuse=False)
        before = sim_stats(sim)["native_batches"]
        key = g.create_key(credits_usd=5.0)
        oa = _oa(g, key)
        lines = [_chat(f"e{i}", f"say: e{i}", model="via-anthropic") for i in range(6)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.monotonic() + 20
        while sim_stats(sim)["native_batches"]["submissions"]["anthropic"] == \
                before["submissions"]["anthropic"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(2.5)
        clock.ahead += 86_400 + 60
        done = wait(_oa(g, key), batch.id)
        assert done.status == "expired", done
        assert sim_stats(sim)["native_batches"]["cancels"] - before["cancels"] == 1
        out, err = _jsonl(oa, done.output_file_id), _jsonl(oa, done.error_file_id)
        assert set(out) | set(err) == {ln["custom_id"] for ln in lines}
        assert 1 <= len(out) < 6
        assert all(r["error"]["code"] == "batch_expired" for r in err.values())
        check_ledger(g, key, out)
    finally:
        g.stop()


@pytest.mark.parametrize("endpoint", ["/v1/responses", "/v1/completions"])
def test_other_endpoints_go_native_in_their_own_format(gw, sim, endpoint):
    sim_config(sim, delay=0.3, refuse=False, fail=False)
    before = sim_stats(sim)
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    if endpoint == "/v1/responses":
        lines = [{"custom_id": f"r{i}", "method": "POST", "url": endpoint,
                  "body": {"model": "via-gemini", "input": f"say: r{i}", "max_output_tokens": 20}}
                 for i in range(3)]
    else:
        lines = [{"custom_id": f"r{i}", "method": "POST", "url": endpoint,
                  "body": {"model": "via-gemini", "prompt": f"say: r{i}", "max_tokens": 20}}
                 for i in range(3)]
    batch = oa.batches.create(input_file_id=_upload(oa, lines), endpoint=endpoint,
                              completion_window="24h")
    done = wait(oa, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3
    after = sim_stats(sim)
    assert after["native_batches"]["submissions"]["gemini"] - \
        before["native_batches"]["submissions"]["gemini"] == 1
    assert after["requests"] == before["requests"]
    out = _jsonl(oa, done.output_file_id)
    db = gw.db()
    try:
        settles = _settles(db, key["account_id"])
        for i in range(3):
            body = out[f"r{i}"]["response"]["body"]
            u = body["usage"]
            if endpoint == "/v1/responses":
                assert body["object"] == "response"
                assert body["output"][0]["content"][0]["text"] == f"r{i}"
                billed = int((u["input_tokens"] + 2 * u["output_tokens"]) * 0.5)
            else:
                assert body["object"] == "text_completion"
                assert body["choices"][0]["text"] == f"r{i}"
                billed = _billed(u)
            assert settles[out[f"r{i}"]["response"]["request_id"]] == billed
        assert store.check_invariants(db) == [] and store.count_open_holds(db) == 0
    finally:
        db.close()


def test_large_group_is_split_under_the_upstream_caps(gw, sim, monkeypatch):
    import gateway.jobs.native as native
    monkeypatch.setitem(native.LIMITS, "anthropic", (3, 10 ** 9))
    sim_config(sim, delay=0.3, refuse=False, fail=False)
    before = sim_stats(sim)["native_batches"]
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    lines = [_chat(f"s{i}", f"say: s{i}", model="via-anthropic") for i in range(7)]
    batch = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                              completion_window="24h")
    done = wait(oa, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 7
    after = sim_stats(sim)["native_batches"]
    assert after["submissions"]["anthropic"] - before["submissions"]["anthropic"] == 3
    assert after["lines"]["anthropic"] - before["lines"]["anthropic"] == 7
    check_ledger(gw, key, _jsonl(oa, done.output_file_id))


def test_native_lines_wait_for_the_account_rate_limit(sim, tmp_path, request):
    """The account's rate limit binds native lines as it binds the others: admission
    waits for it, and every line still goes in the one upstream batch."""
    g = harness.start_gateway(tmp_path, sim, jobs=JOBS, store=setup.store_for(request),
                              plans=[{"id": "slow", "account_rpm": 600,
                                      "fallthrough_to_wallet": True}],
                              limits={"burst_seconds": 0.3}, **config(tmp_path, sim))
    try:
        sim_config(sim, delay=0.3, refuse=False, fail=False)
        before = sim_stats(sim)
        key = g.create_key(credits_usd=5.0, plan="slow")
        oa = _oa(g, key)
        lines = [_chat(f"w{i}", f"say: w{i}", model="via-openai") for i in range(12)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        done = wait(oa, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 12, done
        after = sim_stats(sim)
        nb0, nb1 = before["native_batches"], after["native_batches"]
        assert nb1["submissions"]["openai"] - nb0["submissions"]["openai"] == 1
        assert nb1["lines"]["openai"] - nb0["lines"]["openai"] == 12
        assert after["requests"] == before["requests"]
        check_ledger(g, key, _jsonl(oa, done.output_file_id))
    finally:
        g.stop()


def test_provider_removed_by_reload_abandons_its_upstream_batch(sim, tmp_path, request):
    """A reload that removes the provider of a pending upstream batch: nothing can
    reach it any more, so its lines end in the error file, unbilled, holds voided."""
    from tests.scale.nodes import to_toml
    cfg = harness.gateway_config(tmp_path, sim, jobs=JOBS, **config(tmp_path, sim))
    cfg["store"].update(setup.store_for(request))
    path = tmp_path / "prism.toml"
    path.write_text(to_toml(cfg), encoding="utf-8")
    g = harness.start_gateway(tmp_path, None, config_path=str(path))
    try:
        sim_config(sim, delay=30.0, refuse=False, fail=False)
        before = sim_stats(sim)["native_batches"]
        key = g.create_key(credits_usd=5.0)
        oa = _oa(g, key)
        lines = [_chat(f"o{i}", f"say: o{i}", model="via-anthropic") for i in range(3)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.monotonic() + 20
        while sim_stats(sim)["native_batches"]["submissions"]["anthropic"] == \
                before["submissions"]["anthropic"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cfg["providers"] = [p for p in cfg["providers"] if p["id"] != "sim-anthropic"]
        cfg["models"] = [m for m in cfg["models"] if m["id"] != "via-anthropic"]
        path.write_text(to_toml(cfg), encoding="utf-8")
        assert g.admin.post("/-/reload").status_code == 200
        done = wait(_oa(g, key), batch.id)
        assert done.status == "completed" and done.request_counts.failed == 3
        err = _jsonl(oa, done.error_file_id)
        assert set(err) == {"o0", "o1", "o2"}
        assert all(r["response"]["status_code"] == 502 for r in err.values())
        check_ledger(g, key, {})
    finally:
        sim_config(sim, delay=1.0)
        g.stop()
