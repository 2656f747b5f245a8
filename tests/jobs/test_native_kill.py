"""`prism serve` SIGKILLed while it polls native upstream batches (no release, no
shielded cleanup): a new process on the same store resumes polling the upstream batches
it finds recorded, never submits them again, and settles each line exactly once with
the ledger exact (a hold the restart swept is taken again before its line settles)."""
from __future__ import annotations

import json
import os
import time

import httpx
import openai

import harness
import store
import store.batch_lines
import store.batch_native as sn
from tests.jobs import setup
from tests.jobs.test_batches import _chat, _jsonl, _upload, wait
from tests.jobs.test_native_batch import KINDS, _billed, _settles, config
from tests.scale.nodes import Node, write_config

JOBS = {**setup.JOBS, "lease_seconds": 1.0, "native_poll_interval": 0.2}


def test_sigkill_mid_poll_resumes_without_resubmitting(tmp_path, request):
    sim = harness.start_simulator()
    try:
        _run(sim.url, tmp_path, request)
    finally:
        sim.stop()


def _run(sim: str, tmp_path, request) -> None:
    if os.environ.get("PRISM_TEST_STORE", "sqlite") == "sqlite":
        url = "sqlite:///" + str(tmp_path / "prism.db")
    else:
        url = setup.store_for(request)["url"]
    cfg = write_config(tmp_path, sim, url, jobs=JOBS, **config(tmp_path, sim))
    httpx.post(sim + "/_sim/batches/config", json={"delay": 5.0}).raise_for_status()
    node = Node(cfg)
    try:
        key = node.create_key(credits_usd=5.0)
        oa = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
        lines = [_chat(f"{k}-{i}", f"say: {k} {i}", model=f"via-{k}")
                 for k in KINDS for i in range(4)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.monotonic() + 30
        while sum(httpx.get(sim + "/_sim/stats").json()["native_batches"]["submissions"]
                  .values()) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)                 # a few polls in
        assert httpx.get(sim + "/_sim/batches").json()["polls"] > 0
        # A fresh client: the last one's connection idled past the keep-alive timeout.
        oa = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
        assert oa.batches.retrieve(batch.id).status == "in_progress"
    finally:
        node.kill()
    db = store.open_database(url)
    try:
        groups = sn.groups(db, batch.id)
        assert len(groups) == 3 and all(g.state == "submitted" and g.upstream_id for g in groups)
        assert store.count_open_holds(db) == len(lines)       # killed holding every line
    finally:
        db.close()

    node = Node(cfg)
    try:
        oa = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
        done = wait(oa, batch.id, timeout=60)
        assert done.status == "completed" and done.request_counts.completed == len(lines)
        out = _jsonl(oa, done.output_file_id)
        raw = oa.files.content(done.output_file_id).text.splitlines()
        ids = [json.loads(x)["custom_id"] for x in raw if x.strip()]
        assert sorted(ids) == sorted(ln["custom_id"] for ln in lines)      # each once
    finally:
        node.stop()
    stats = httpx.get(sim + "/_sim/stats").json()
    assert stats["native_batches"]["submissions"] == {k: 1 for k in KINDS}  # never resent
    assert stats["native_batches"]["lines"] == {k: 4 for k in KINDS}
    assert stats["requests"] == 0                                         # nor line by line
    db = store.open_database(url)
    try:
        settles = _settles(db, key["account_id"])
        if url.startswith("sqlite"):
            # The restart's sweep ended every hold: each line settled on a fresh one.
            assert all(k.endswith("#r1") for k in setup.settles(db, key["account_id"]))
        assert set(settles) == {r["response"]["request_id"] for r in out.values()}
        for r in out.values():
            assert settles[r["response"]["request_id"]] == _billed(r["response"]["body"]["usage"])
        assert store.check_invariants(db) == []
        assert store.count_open_holds(db) == 0
        assert all(g.state == "collected" for g in sn.groups(db, batch.id))
    finally:
        db.close()


def test_sigkill_mid_submit_adopts_the_upstream_batch(tmp_path, request):
    """Killed after the upstream accepted a batch but before its answer arrived: the
    next process finds the batch upstream by its tag (OpenAI metadata, Gemini display
    name) and polls it rather than sending it again."""
    sim = harness.start_simulator()
    try:
        _run_submit(sim.url, tmp_path, request)
    finally:
        sim.stop()


def _run_submit(sim: str, tmp_path, request) -> None:
    if os.environ.get("PRISM_TEST_STORE", "sqlite") == "sqlite":
        url = "sqlite:///" + str(tmp_path / "prism.db")
    else:
        url = setup.store_for(request)["url"]
    cfg = write_config(tmp_path, sim, url, jobs=JOBS, **config(tmp_path, sim))
    httpx.post(sim + "/_sim/batches/config",
               json={"delay": 1.0, "create_delay": 30.0}).raise_for_status()
    kinds = ("openai", "gemini")
    node = Node(cfg)
    try:
        key = node.create_key(credits_usd=5.0)
        oa = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
        lines = [_chat(f"{k}-{i}", f"say: {k} {i}", model=f"via-{k}")
                 for k in kinds for i in range(3)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        deadline = time.monotonic() + 30
        while sum(httpx.get(sim + "/_sim/batches").json()["submissions"].values()) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        node.kill()
    httpx.post(sim + "/_sim/batches/config", json={"create_delay": 0.0}).raise_for_status()
    db = store.open_database(url)
    try:
        groups = sn.groups(db, batch.id)
        assert sorted(g.state for g in groups) == ["submitting", "submitting"]
        assert not any(g.upstream_id for g in groups)
    finally:
        db.close()
    node = Node(cfg)
    try:
        oa = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
        done = wait(oa, batch.id, timeout=60)
        assert done.status == "completed" and done.request_counts.completed == len(lines)
        out = _jsonl(oa, done.output_file_id)
        assert set(out) == {ln["custom_id"] for ln in lines}
    finally:
        node.stop()
    stats = httpx.get(sim + "/_sim/stats").json()
    assert stats["native_batches"]["submissions"] == {"openai": 1, "anthropic": 0, "gemini": 1}
    assert stats["requests"] == 0
    db = store.open_database(url)
    try:
        settles = _settles(db, key["account_id"])
        assert set(settles) == {r["response"]["request_id"] for r in out.values()}
        for r in out.values():
            assert settles[r["response"]["request_id"]] == _billed(r["response"]["body"]["usage"])
        assert store.check_invariants(db) == [] and store.count_open_holds(db) == 0
    finally:
        db.close()
