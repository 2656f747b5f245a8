"""A gateway stopped in the middle of a batch and of an async job: after a restart on
the same store each line and the job finish exactly once, and the ledger is exact."""
from __future__ import annotations

import json
import time

import httpx
import openai

import store
import store.batch_lines
from tests.jobs import setup
from tests.jobs.test_batches import _chat, _jsonl, _upload, wait


def test_restart_mid_batch_and_mid_async_job(sim_url, tmp_path, request):
    where = setup.store_for(request)   # both runs on the same store
    gw = setup.start(tmp_path, sim_url, store=where, jobs={"batch_line_concurrency": 4})
    key = gw.create_key(credits_usd=5.0)
    try:
        oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)
        lines = [_chat(f"r-{i}", f"line {i} [[sim delay_ms=250]]") for i in range(30)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        h = {"authorization": f"Bearer {key['key']}"}
        job = httpx.post(gw.url + "/v1/chat/completions", headers=h, json={
            "model": "prism-mini", "async": True,
            "messages": [{"role": "user", "content": "slow [[sim delay_ms=1500]]"}]}).json()["id"]
        deadline = time.monotonic() + 30
        while oa.batches.retrieve(batch.id).request_counts.completed < 6:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(f"{gw.url}/v1/async/{job}", headers=h).json()["status"] == "running"
    finally:
        gw.stop()
    db = store.open_database(gw.db_path)
    try:
        ran_before = sum(1 for ln in store.batch_lines.all_lines(db, batch.id) if ln.state == "succeeded")
    finally:
        db.close()
    assert 6 <= ran_before < 30

    gw = setup.start(tmp_path, sim_url, store=where)
    try:
        oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)
        done = wait(oa, batch.id)
        assert done.status == "completed" and done.request_counts.completed == 30
        out = _jsonl(oa, done.output_file_id)
        assert set(out) == {ln["custom_id"] for ln in lines}
        h = {"authorization": f"Bearer {key['key']}"}
        deadline = time.monotonic() + 30
        while (a := httpx.get(f"{gw.url}/v1/async/{job}", headers=h).json())["status"] != "succeeded":
            assert a["status"] in ("queued", "running") and time.monotonic() < deadline, a
            time.sleep(0.05)
        assert a["attempts"] >= 2   # it ran again after the restart
        db = gw.db()
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
    finally:
        gw.stop()


def test_jobs_table_records(tmp_path):
    # The lease guard itself: a runner that lost its lease cannot write the job.
    db = store.open_database(str(tmp_path / "j.db"))
    try:
        sj = store.jobs
        sj.insert_job(db, id="async_x", kind="async", account_id="a",
                      payload=json.dumps({"route": "/v1/chat/completions", "body": {}}))
        [job] = sj.claim_jobs(db, "one", "async", 5, now=time.time(), wall=time.time(), lease_s=0.01)
        assert sj.claim_jobs(db, "two", "async", 5, now=time.time(), wall=time.time() - 1,
                             lease_s=5) == []   # the lease has not lapsed yet
        assert job.attempts == 1 and job.lease_owner == "one"
        time.sleep(0.02)
        [again] = sj.claim_jobs(db, "two", "async", 5, now=time.time(), wall=time.time(), lease_s=5)
        assert again.lease_owner == "two" and again.attempts == 2
        assert not sj.update_owned(db, "async_x", "one", state="succeeded")
        assert sj.update_owned(db, "async_x", "two", state="succeeded")
        assert sj.get_job(db, "async_x").state == "succeeded"
    finally:
        db.close()


def test_two_runners_never_claim_the_same_job(store_target):
    """Two claimers on their own connections (FOR UPDATE SKIP LOCKED on PostgreSQL, the
    write lock on SQLite) split the queue between them, never sharing a job."""
    import threading
    db = store.open_database(store_target)
    try:
        for i in range(60):
            store.jobs.insert_job(db, id=f"async_{i:03d}", kind="async", account_id="a",
                                  payload="{}")
    finally:
        db.close()
    got: dict[str, list[str]] = {"one": [], "two": []}

    def claim(owner: str) -> None:
        conn = store.open_database(store_target)
        try:
            while True:
                jobs = store.jobs.claim_jobs(conn, owner, "async", 3, now=time.time(),
                                             wall=time.time(), lease_s=60)
                if not jobs:
                    return
                got[owner] += [j.id for j in jobs]
        finally:
            conn.close()
    threads = [threading.Thread(target=claim, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not set(got["one"]) & set(got["two"])
    assert sorted(got["one"] + got["two"]) == [f"async_{i:03d}" for i in range(60)]
