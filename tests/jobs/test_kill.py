"""`prism serve` killed with SIGKILL in the middle of a batch and of an async job (no
release, no shielded cleanup): a new process on the same store takes both over once
their leases lapse, and each line and the job finish exactly once with the ledger exact."""
from __future__ import annotations

import time

import openai

import store
import store.batch_lines
from tests.jobs import setup
from tests.jobs.test_batches import _chat, _jsonl, _upload, wait
from tests.scale.nodes import Node, write_config

JOBS = {**setup.JOBS, "lease_seconds": 1.0, "batch_line_concurrency": 4}


def test_sigkill_mid_batch_and_mid_async_job(sim_url, tmp_path):
    db_path = str(tmp_path / "prism.db")
    cfg = write_config(tmp_path, sim_url, "sqlite:///" + db_path, jobs=JOBS,
                       models=setup.harness.gateway_config(tmp_path, sim_url)["models"]
                       + [setup.EMBED])
    node = Node(cfg)
    try:
        key = node.create_key(credits_usd=5.0)
        oa = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
        lines = [_chat(f"r-{i}", f"line {i} [[sim delay_ms=300]]") for i in range(24)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        h = {"authorization": f"Bearer {key['key']}"}
        job = node.admin.post("/v1/chat/completions", headers=h, json={
            "model": "prism-mini", "async": True,
            "messages": [{"role": "user", "content": "slow [[sim delay_ms=2000]]"}]}).json()["id"]
        deadline = time.monotonic() + 30
        while oa.batches.retrieve(batch.id).request_counts.completed < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert node.admin.get(f"/v1/async/{job}", headers=h).json()["status"] == "running"
    finally:
        node.kill()
    db = store.open_database(db_path)
    try:
        ran_before = sum(1 for ln in store.batch_lines.all_lines(db, batch.id)
                         if ln.state == "succeeded")
        assert store.count_open_holds(db) > 0   # killed with calls in flight
    finally:
        db.close()
    assert 4 <= ran_before < 24

    node = Node(cfg)
    try:
        oa = openai.OpenAI(base_url=node.url + "/v1", api_key=key["key"], max_retries=0)
        done = wait(oa, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 24
        assert done.request_counts.failed == 0
        raw = oa.files.content(done.output_file_id).text.splitlines()
        ids = [__import__("json").loads(x)["custom_id"] for x in raw if x.strip()]
        assert sorted(ids) == sorted(ln["custom_id"] for ln in lines)   # each once
        out = _jsonl(oa, done.output_file_id)
        h = {"authorization": f"Bearer {key['key']}"}
        deadline = time.monotonic() + 30
        while (a := node.admin.get(f"/v1/async/{job}", headers=h).json())["status"] != "succeeded":
            assert a["status"] in ("queued", "running") and time.monotonic() < deadline, a
            time.sleep(0.05)
        assert a["attempts"] >= 2
    finally:
        node.stop()
    db = store.open_database(db_path)
    try:
        settles = setup.settles(db, key["account_id"])
        expected = {r["response"]["request_id"] for r in out.values()} | {a["request_id"]}
        assert set(settles) == expected          # one settlement per line and job
        assert settles[a["request_id"]] == a["cost_micros"]
        for r in out.values():
            u = r["response"]["body"]["usage"]
            assert settles[r["response"]["request_id"]] == int(
                (u["prompt_tokens"] + 2 * u["completion_tokens"]) * 0.5)
        assert store.check_invariants(db) == []
        assert store.count_open_holds(db) == 0
    finally:
        db.close()
