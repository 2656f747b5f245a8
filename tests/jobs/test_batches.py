"""Batches through the official openai SDK against a running gateway: a 200-line file
mixing chat and embeddings runs to completion with output and error files matching
every custom_id and the ledger exact at the batch price; validation failures fail the
batch before any upstream call; a cancelled batch bills the lines that ran and no
others; each batch belongs to its account; the operator's /-/batches sees them all."""
from __future__ import annotations

import io
import json
import time

import httpx
import openai
import pytest

import store
import store.batch_lines
from tests.jobs import setup


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory, request):
    g = setup.start(tmp_path_factory.mktemp("jobs-batch"), sim_url, request)
    yield g
    g.stop()


def _oa(gw, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)


def _upload(oa: openai.OpenAI, lines: list) -> str:
    data = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    return oa.files.create(file=("in.jsonl", io.BytesIO(data.encode())), purpose="batch").id


def _chat(cid: str, text: str, url="/v1/chat/completions", model="prism-mini") -> dict:
    return {"custom_id": cid, "method": "POST", "url": url,
            "body": {"model": model, "max_tokens": 20,
                     "messages": [{"role": "user", "content": text}]}}


def _embed(cid: str, text: str) -> dict:
    return {"custom_id": cid, "method": "POST", "url": "/v1/embeddings",
            "body": {"model": "emb", "input": text}}


def wait(oa: openai.OpenAI, batch_id: str, until=("completed", "failed", "cancelled", "expired"),
         timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = oa.batches.retrieve(batch_id)
        if b.status in until:
            return b
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} still {b.status}")


def _jsonl(oa: openai.OpenAI, file_id: str | None) -> dict[str, dict]:
    if file_id is None:
        return {}
    text = oa.files.content(file_id).text
    rows = [json.loads(x) for x in text.splitlines() if x]
    out = {r["custom_id"]: r for r in rows}
    assert len(out) == len(rows), "a custom_id appears twice in an output file"
    return out


def _half(micros_full: int) -> int:
    return int(micros_full * 0.5)


def test_mixed_batch_of_200_completes_with_exact_ledger(gw):
    key = gw.create_key(credits_usd=20.0)
    oa = _oa(gw, key)
    lines = []
    for i in range(200):
        if i % 4 == 3:
            lines.append(_embed(f"e-{i}", f"embed me number {i}"))
        elif i in (10, 50):
            lines.append(_chat(f"c-{i}", "refused upstream [[sim status=400]]"))
        elif i == 90:
            lines.append(_chat(f"c-{i}", "always broken [[sim status=500]]"))
        else:
            lines.append(_chat(f"c-{i}", f"question {i}"))
    batch = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="mixed",
                              completion_window="24h", metadata={"run": "mixed"})
    assert batch.status in ("validating", "in_progress")
    done = wait(oa, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 200
    assert done.request_counts.completed == 197 and done.request_counts.failed == 3
    assert done.metadata == {"run": "mixed"}
    out, err = _jsonl(oa, done.output_file_id), _jsonl(oa, done.error_file_id)
    assert set(out) | set(err) == {ln["custom_id"] for ln in lines}
    assert not set(out) & set(err)
    assert set(err) == {"c-10", "c-50", "c-90"}
    assert err["c-10"]["response"]["status_code"] == 400
    assert err["c-90"]["response"]["status_code"] >= 500
    db = gw.db()
    try:
        settles = setup.settles(db, key["account_id"])
        assert len(settles) == 197
        for cid, row in out.items():
            body, rid = row["response"]["body"], row["response"]["request_id"]
            if cid.startswith("e-"):
                assert body["object"] == "list" and body["data"][0]["embedding"]
                full = body["usage"]["prompt_tokens"]
            else:
                assert body["object"] == "chat.completion"
                full = body["usage"]["prompt_tokens"] + 2 * body["usage"]["completion_tokens"]
            assert settles[rid] == _half(full), cid
        assert store.check_invariants(db) == []
        assert sum(settles.values()) == oa.batches.retrieve(batch.id).model_extra["cost_micros"]
    finally:
        db.close()


def test_validation_fails_before_any_upstream_call(gw):
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    lines = [_chat("a", "fine"), "{not json", _chat("a", "duplicate"),
             _chat("b", "wrong url", url="/v1/embeddings"),
             _chat("c", "no such model", model="nope"), _chat("d", "fine too")]
    b = wait(oa, oa.batches.create(input_file_id=_upload(oa, lines),
                                   endpoint="/v1/chat/completions", completion_window="24h").id)
    assert b.status == "failed"
    codes = {(e.line, e.code) for e in b.errors.data}
    assert {(2, "invalid_json_line"), (3, "duplicate_custom_id"), (4, "mismatched_endpoint"),
            (5, "model_not_found")} <= codes
    assert b.output_file_id is None
    db = gw.db()
    try:
        assert setup.settles(db, key["account_id"]) == {}
    finally:
        db.close()
    with pytest.raises(openai.BadRequestError):
        oa.batches.create(input_file_id=_upload(oa, [_chat("x", "y")]), endpoint="/v1/nope",
                          completion_window="24h")
    fid = _upload(oa, [_chat("x", "y")])
    for bad in ({"completion_window": ["24h"]}, {"completion_window": "1h"},
                {"endpoint": ["/v1/embeddings"]}, {"metadata": {"k": 1}},
                {"input_file_id": 7}):
        body = {"input_file_id": fid, "endpoint": "/v1/chat/completions",
                "completion_window": "24h", **bad}
        r = httpx.post(gw.url + "/v1/batches", json=body,
                       headers={"authorization": f"Bearer {key['key']}"})
        assert r.status_code == 400, (bad, r.text)
    with pytest.raises(openai.BadRequestError):   # an upload that is not for batches
        other = oa.files.create(file=("x.txt", io.BytesIO(b"x")), purpose="assistants").id
        oa.batches.create(input_file_id=other, endpoint="/v1/chat/completions",
                          completion_window="24h")


def test_cancel_running_batch_bills_only_lines_that_ran(gw):
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    lines = [_chat(f"s-{i}", f"slow {i} [[sim delay_ms=400]]") for i in range(40)]
    batch = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                              completion_window="24h")
    deadline = time.monotonic() + 30
    while oa.batches.retrieve(batch.id).request_counts.completed < 8:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert oa.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    done = wait(oa, batch.id)
    assert done.status == "cancelled"
    out, err = _jsonl(oa, done.output_file_id), _jsonl(oa, done.error_file_id)
    assert set(out) | set(err) == {ln["custom_id"] for ln in lines}
    assert 8 <= len(out) < 40
    db = gw.db()
    try:
        settles = setup.settles(db, key["account_id"])
        assert set(settles) == {r["response"]["request_id"] for r in out.values()}
        assert store.check_invariants(db) == []
        assert store.count_open_holds(db) == 0
    finally:
        db.close()


def test_batches_belong_to_their_account_and_admin_sees_all(gw):
    key, other = gw.create_key(credits_usd=5.0), gw.create_key(credits_usd=5.0)
    oa, oo = _oa(gw, key), _oa(gw, other)
    b = oa.batches.create(input_file_id=_upload(oa, [_chat("x", "hello")]),
                          endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        oo.batches.retrieve(b.id)
    with pytest.raises(openai.NotFoundError):
        oo.batches.cancel(b.id)
    with pytest.raises(openai.NotFoundError):   # another account's file
        oo.batches.create(input_file_id=b.input_file_id, endpoint="/v1/chat/completions",
                          completion_window="24h")
    wait(oa, b.id)
    assert [x.id for x in oa.batches.list(limit=10)] == [b.id]
    assert list(oo.batches.list()) == []
    # The operator: every account's batches, and one submitted on an account's behalf.
    r = gw.admin.get(f"/-/batches/{b.id}")
    assert r.status_code == 200 and r.json()["account_id"] == key["account_id"]
    fid = _upload(oo, [_chat("z", "for you")])
    r = gw.admin.post("/-/batches", json={"account_id": other["account_id"], "input_file_id": fid,
                                          "endpoint": "/v1/chat/completions"})
    assert r.status_code == 200, r.text
    assert wait(oo, r.json()["id"]).status == "completed"
    listed = gw.admin.get("/-/batches", params={"limit": 100}).json()["data"]
    assert {b.id, r.json()["id"]} <= {x["id"] for x in listed}
    assert gw.admin.post(f"/-/batches/{b.id}/cancel").json()["status"] == "completed"
    # Pagination over the account's own list.
    page1 = oo.batches.list(limit=1)
    assert len(page1.data) == 1 and page1.has_more is False


def test_lines_wait_for_the_account_rate_limit(sim_url, tmp_path, request):
    g = setup.start(tmp_path, sim_url, request,
                    plans=[{"id": "slow", "account_rpm": 600, "fallthrough_to_wallet": True}],
                    limits={"burst_seconds": 0.3})
    try:
        key = g.create_key(credits_usd=5.0, plan="slow")
        oa = _oa(g, key)
        lines = [_chat(f"l-{i}", f"q {i}") for i in range(12)]
        b = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                              completion_window="24h")
        done = wait(oa, b.id)
        assert done.status == "completed" and done.request_counts.completed == 12, done
        db = g.db()
        try:
            assert len(setup.settles(db, key["account_id"])) == 12
            assert store.check_invariants(db) == []
            # The limiter did refuse some (burst 3, concurrency 8): they waited and ran.
            assert max(ln.attempts for ln in store.batch_lines.all_lines(db, b.id)) > 1
        finally:
            db.close()
    finally:
        g.stop()


def test_batch_objects_carry_the_state_machine_timestamps(gw):
    """OpenAI's batch object fields, read through the SDK: each phase the batch passed
    through has its time, in order; phases it never reached stay null."""
    key = gw.create_key(credits_usd=5.0)
    oa = _oa(gw, key)
    lines = [_chat(f"t-{i}", f"line {i} [[sim delay_ms=200]]") for i in range(4)]
    b = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                          completion_window="24h")
    seen = wait(oa, b.id, until=("in_progress", "finalizing", "completed"))
    assert seen.in_progress_at is not None and seen.in_progress_at >= seen.created_at
    done = wait(oa, b.id)
    assert done.status == "completed"
    assert done.created_at <= done.in_progress_at <= done.finalizing_at <= done.completed_at
    assert done.in_progress_at == seen.in_progress_at   # the first time, not rewritten
    assert done.completed_at >= int(time.time()) - 60
    assert (done.cancelling_at, done.cancelled_at, done.failed_at, done.expired_at) == \
        (None, None, None, None)

    slow = [_chat(f"c-{i}", f"slow {i} [[sim delay_ms=400]]") for i in range(30)]
    c = oa.batches.create(input_file_id=_upload(oa, slow), endpoint="/v1/chat/completions",
                          completion_window="24h")
    wait(oa, c.id, until=("in_progress",))
    cancelling = oa.batches.cancel(c.id)
    assert cancelling.cancelling_at is not None
    done = wait(oa, c.id)
    assert done.status == "cancelled"
    assert done.created_at <= done.in_progress_at <= done.cancelling_at <= done.cancelled_at
    assert done.finalizing_at is None and done.completed_at is None

    q = oa.batches.create(input_file_id=_upload(oa, [_chat("x", "y"), "{bad"]),
                          endpoint="/v1/chat/completions", completion_window="24h")
    failed = wait(oa, q.id)
    assert failed.status == "failed" and failed.failed_at >= failed.created_at
    assert failed.in_progress_at is None and failed.finalizing_at is None
