"""Scheduled completions with an injected clock (one-shot and cron), a run the account
cannot pay recorded as failed while the schedule goes on, and a signed webhook retried
after the receiver answered 500, delivered to a tiny receiver on a real socket."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import store
from tests.jobs import setup

T0 = 1_900_000_000.0 - (1_900_000_000.0 % 3600)   # on the hour


class Clock:
    def __init__(self) -> None:
        self.t = T0 + 30

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory, clock, request):
    g = setup.start(tmp_path_factory.mktemp("jobs-sched"), sim_url, request, clock=clock)
    yield g
    g.stop()


def _client(gw, key) -> httpx.Client:
    return httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {key['key']}"},
                        timeout=30)


def _body(text: str) -> dict:
    return {"model": "prism-mini", "max_tokens": 20, "messages": [{"role": "user", "content": text}]}


def _wait(c: httpx.Client, job_id: str, cond, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = c.get(f"/v1/scheduled/{job_id}").json()
        if cond(obj):
            return obj
        time.sleep(0.05)
    raise AssertionError(obj)


def test_one_shot_and_cron_fire_on_the_injected_clock(gw, clock):
    key = gw.create_key(credits_usd=5.0)
    with _client(gw, key) as c:
        one = c.post("/v1/scheduled", json={"delay_seconds": 600, "body": _body("once")})
        assert one.status_code == 201, one.text
        one = one.json()
        cron = c.post("/v1/scheduled", json={"cron": "*/15 * * * *", "timezone": "Europe/Paris",
                                             "body": _body("every quarter")}).json()
        assert cron["next_run_at"] == T0 + 900
        time.sleep(0.5)   # the runner polls every 0.05 s: nothing is due yet
        assert c.get(f"/v1/scheduled/{one['id']}").json()["run_count"] == 0
        clock.advance(600)                       # T0+630: the one-shot is due
        done = _wait(c, one["id"], lambda o: o["status"] == "succeeded")
        assert done["run_count"] == 1 and done["runs"][0]["status"] == "succeeded"
        assert done["runs"][0]["response"]["object"] == "chat.completion"
        assert c.get(f"/v1/scheduled/{cron['id']}").json()["run_count"] == 0
        clock.advance(300)                       # T0+930: the first quarter
        first = _wait(c, cron["id"], lambda o: o["run_count"] == 1 and o["status"] == "queued")
        assert first["next_run_at"] == T0 + 1800
        clock.advance(900)                       # T0+1830: the second
        second = _wait(c, cron["id"], lambda o: o["run_count"] == 2 and o["status"] == "queued")
        assert [r["run"] for r in second["runs"]] == [1, 2]
        listed = c.get("/v1/scheduled", params={"status": "queued"}).json()["data"]
        assert [x["id"] for x in listed] == [cron["id"]]
        assert c.delete(f"/v1/scheduled/{cron['id']}").json()["status"] == "cancelled"
    db = gw.db()
    try:
        settles = setup.settles(db, key["account_id"])
        runs = done["runs"] + second["runs"]
        assert set(settles) == {r["request_id"] for r in runs}
        assert all(settles[r["request_id"]] == r["cost_micros"] for r in runs)
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_unpaid_run_is_failed_and_the_schedule_goes_on(gw, clock):
    key = gw.create_key(credits_usd=0.0)
    other = gw.create_key(credits_usd=1.0)
    with _client(gw, key) as c, _client(gw, other) as o:
        s = c.post("/v1/scheduled", json={"cron": "0 * * * *", "body": _body("hourly")}).json()
        assert o.get(f"/v1/scheduled/{s['id']}").status_code == 404
        clock.advance(3600)
        obj = _wait(c, s["id"], lambda x: x["run_count"] == 1)
        assert obj["status"] == "queued" and obj["runs"][0]["status"] == "failed"
        assert obj["runs"][0]["error"]["status_code"] == 402
        assert obj["next_run_at"] > clock()
        bad = c.post("/v1/scheduled", json={"cron": "61 * * * *", "body": _body("x")})
        assert bad.status_code == 400 and "cron" in bad.text
        assert c.post("/v1/scheduled", json={"body": _body("x")}).status_code == 400
        for tz in (5, "Mars/Olympus", "../../etc/passwd", "x" * 100):
            r = c.post("/v1/scheduled", json={"cron": "0 * * * *", "timezone": tz,
                                              "body": _body("x")})
            assert r.status_code == 400 and "timezone" in r.text, (tz, r.text)
        for run_at in ("tomorrow", "2030-01-01T00:00:00", 12):
            r = c.post("/v1/scheduled", json={"run_at": run_at, "body": _body("x")})
            assert r.status_code == 400 and "run_at" in r.text
        r = c.post("/v1/scheduled", json={"delay_seconds": 5, "body": "nope"})
        assert r.status_code == 400


class _Receiver(BaseHTTPRequestHandler):
    got: list = []
    answers: list = []

    def do_POST(self):   # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).got.append((dict(self.headers), body))
        status = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def test_webhook_signed_and_retried_after_500(gw):
    _Receiver.got, _Receiver.answers = [], [500]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        key = gw.create_key(credits_usd=5.0)
        with _client(gw, key) as c:
            url = f"http://127.0.0.1:{server.server_port}/hook"
            r = c.post("/v1/chat/completions", json={**_body("hook me"), "async": True,
                                                     "callback_url": url})
            assert r.status_code == 202, r.text
            job = r.json()["id"]
            deadline = time.monotonic() + 15
            while c.get(f"/v1/async/{job}").json()["webhook_status"] != "delivered":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            secret = c.get("/v1/webhook_secret").json()["secret"]
            refused = c.post("/v1/chat/completions", json={
                **_body("x"), "async": True, "callback_url": "http://169.254.169.254/latest"})
            assert refused.status_code == 400 and "callback_url" in refused.text
        assert len(_Receiver.got) == 2          # the 500, then the retry
        for headers, body in _Receiver.got:
            ts = headers["X-Prism-Webhook-Timestamp"]
            mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
            assert headers["X-Prism-Webhook-Signature"] == "v1=" + mac
            payload = json.loads(body)
            assert payload["id"] == job and payload["status"] == "succeeded"
            assert payload["result"]["object"] == "chat.completion"
    finally:
        server.shutdown()


def test_batch_expires_past_its_completion_window(gw, clock):
    import openai
    from tests.jobs.test_batches import _chat, _jsonl, _upload, wait
    key = gw.create_key(credits_usd=5.0)
    oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)
    lines = [_chat(f"x-{i}", f"slow {i} [[sim delay_ms=300]]") for i in range(40)]
    b = oa.batches.create(input_file_id=_upload(oa, lines), endpoint="/v1/chat/completions",
                          completion_window="24h")
    deadline = time.monotonic() + 30
    while oa.batches.retrieve(b.id).request_counts.completed < 8:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    clock.advance(86400 + 1)
    done = wait(oa, b.id)
    assert done.status == "expired" and done.expired_at is not None
    out, err = _jsonl(oa, done.output_file_id), _jsonl(oa, done.error_file_id)
    assert set(out) | set(err) == {ln["custom_id"] for ln in lines} and len(out) < 40
    assert {r["error"]["code"] for r in err.values()} == {"batch_expired"}
    db = gw.db()
    try:
        settles = setup.settles(db, key["account_id"])
        assert set(settles) == {r["response"]["request_id"] for r in out.values()}
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_results_are_swept_after_their_ttl(gw, clock):
    key = gw.create_key(credits_usd=1.0)
    with _client(gw, key) as c:
        r = c.post("/v1/chat/completions", json={**_body("keep me a while"), "async": True})
        job = r.json()["id"]
        deadline = time.monotonic() + 15
        while c.get(f"/v1/async/{job}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)   # several sweeps: still within its ttl (a day by default)
        assert c.get(f"/v1/async/{job}").status_code == 200
        clock.advance(86400 + 1)
        deadline = time.monotonic() + 15
        while c.get(f"/v1/async/{job}").status_code != 404:
            assert time.monotonic() < deadline
            time.sleep(0.05)
