"""/v1/videos: the job lifecycle, billing at completion, cancel, failure, restart; and
reference images fetched from an allow-listed private host."""
from __future__ import annotations

import httpx
import pytest

import media_setup as ms
import store


def _h(key) -> dict:
    return {"authorization": f"Bearer {key['key']}"}


def _job(gw, key, vid) -> dict:
    r = httpx.get(f"{gw.url}/v1/videos/{vid}", headers=_h(key))
    assert r.status_code == 200, r.text
    return r.json()


def _wait_status(gw, key, vid, status, timeout=15.0) -> dict:
    return ms.wait_for(lambda: (j := _job(gw, key, vid))["status"] == status and j, timeout)


def _settle_rows(gw, account_id) -> list:
    return [r for r in ms.ledger(gw, account_id) if r.kind == "settle"]


@pytest.fixture
def gw(sim_url, tmp_path):
    gateway = ms.start(tmp_path, sim_url)
    yield gateway
    gateway.stop()


@pytest.mark.parametrize("model", ["vid", "vid-inproc"])
def test_video_lifecycle_settles_on_completion(gw, model):
    key = gw.create_key(credits_usd=2.0)
    r = httpx.post(gw.url + "/v1/videos", headers=_h(key),
                   json={"model": model, "prompt": "a cat [[sim video_delay=0.6]]",
                         "seconds": "4", "size": "720x1280"})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["object"] == "video" and job["status"] in ("queued", "in_progress")
    assert job["model"] == model and r.headers["x-prism-model"] == model
    # Held, not yet charged.
    assert ms.wallet(gw, key["account_id"]) == 2_000_000
    assert len(ms.open_holds(gw)) == 1
    r = httpx.get(f"{gw.url}/v1/videos/{job['id']}/content", headers=_h(key))
    assert r.status_code == 400 and r.json()["error"]["code"] == "video_not_ready"

    done = _wait_status(gw, key, job["id"], "completed")
    assert done["progress"] == 100 and done["seconds"] == "4"
    ms.wait_for(lambda: ms.wallet(gw, key["account_id"]) == 1_500_000)
    r = httpx.get(f"{gw.url}/v1/videos/{job['id']}/content", headers=_h(key))
    assert r.status_code == 200 and r.headers["content-type"].startswith("video/mp4")
    assert r.content[4:8] == b"ftyp" and b"mdat" in r.content
    listed = httpx.get(gw.url + "/v1/videos", headers=_h(key)).json()["data"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert len(_settle_rows(gw, key["account_id"])) == 1
    assert ms.open_holds(gw) == [] and ms.invariants(gw) == []


def test_jobs_are_private_to_their_account(gw):
    a, b = gw.create_key(), gw.create_key()
    job = httpx.post(gw.url + "/v1/videos", headers=_h(a),
                     json={"model": "vid-inproc", "prompt": "mine"}).json()
    assert httpx.get(f"{gw.url}/v1/videos/{job['id']}", headers=_h(b)).status_code == 404
    assert httpx.delete(f"{gw.url}/v1/videos/{job['id']}", headers=_h(b)).status_code == 404
    assert httpx.get(gw.url + "/v1/videos", headers=_h(b)).json()["data"] == []


def test_cancel_voids_the_hold(gw):
    key = gw.create_key(credits_usd=1.0)
    job = httpx.post(gw.url + "/v1/videos", headers=_h(key),
                     json={"model": "vid", "prompt": "slow [[sim video_delay=30]]"}).json()
    r = httpx.delete(f"{gw.url}/v1/videos/{job['id']}", headers=_h(key))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert ms.open_holds(gw) == []
    assert ms.wallet(gw, key["account_id"]) == 1_000_000
    r = httpx.delete(f"{gw.url}/v1/videos/{job['id']}", headers=_h(key))
    assert r.status_code == 400 and r.json()["error"]["code"] == "video_not_cancellable"
    assert _settle_rows(gw, key["account_id"]) == []
    assert ms.invariants(gw) == []


def test_slow_upstream_create_is_not_failed_by_the_poller(gw):
    """Regression: the poller (every 0.1 s here) once failed a job whose upstream create
    was still in flight, because its upstream id was not stored yet."""
    key = gw.create_key(credits_usd=1.0)
    r = httpx.post(gw.url + "/v1/videos", headers=_h(key),
                   json={"model": "vid", "prompt": "x [[sim create_delay=0.6 video_delay=0.3]]"})
    assert r.status_code == 200 and r.json()["status"] in ("queued", "in_progress"), r.text
    _wait_status(gw, key, r.json()["id"], "completed")
    ms.wait_for(lambda: ms.wallet(gw, key["account_id"]) == 500_000)
    assert ms.invariants(gw) == []


def test_upstream_failure_voids_the_hold(gw):
    key = gw.create_key(credits_usd=1.0)
    job = httpx.post(gw.url + "/v1/videos", headers=_h(key),
                     json={"model": "vid", "prompt": "x [[sim video_delay=0.2 fail=1]]"}).json()
    failed = _wait_status(gw, key, job["id"], "failed")
    assert failed["error"]["message"]
    ms.wait_for(lambda: ms.open_holds(gw) == [])
    assert ms.wallet(gw, key["account_id"]) == 1_000_000
    assert ms.invariants(gw) == []


def test_refusals_before_upstream(gw, sim_url):
    key = gw.create_key(credits_usd=0.1)
    httpx.post(sim_url + "/_sim/reset")
    cases = [({"prompt": "x"}, 400, "model"), ({"model": "vid"}, 400, "prompt"),
             ({"model": "vid-flagoff", "prompt": "x"}, 400, "video_disabled"),
             ({"model": "img", "prompt": "x"}, 400, "video_not_supported"),
             ({"model": "vid-noprice", "prompt": "x"}, 402, "price_missing"),
             ({"model": "vid", "prompt": "x"}, 402, "insufficient_balance")]
    for body, status, code in cases:
        r = httpx.post(gw.url + "/v1/videos", headers=_h(key), json=body)
        assert r.status_code == status, (body, r.text)
        err = r.json()["error"]
        assert code in (err["code"], err["param"]), (body, err)
    assert ms.sim_stats(sim_url)["video_requests"] == 0
    assert ms.wallet(gw, key["account_id"]) == 100_000


def test_restart_mid_job_completes_and_settles_once(sim_url, tmp_path):
    gw = ms.start(tmp_path, sim_url)
    try:
        key = gw.create_key(credits_usd=2.0)
        job = httpx.post(gw.url + "/v1/videos", headers=_h(key),
                         json={"model": "vid", "prompt": "long [[sim video_delay=2.5]]"}).json()
        assert job["status"] in ("queued", "in_progress")
    finally:
        gw.stop()
    gw = ms.start(tmp_path, sim_url)
    try:
        done = _wait_status(gw, key, job["id"], "completed", timeout=20)
        assert done["id"] == job["id"]
        ms.wait_for(lambda: ms.wallet(gw, key["account_id"]) == 1_500_000)
        assert len(_settle_rows(gw, key["account_id"])) == 1
        assert ms.open_holds(gw) == [] and ms.invariants(gw) == []
        r = httpx.get(f"{gw.url}/v1/videos/{job['id']}/content", headers=_h(key))
        assert r.status_code == 200 and r.content[4:8] == b"ftyp"
    finally:
        gw.stop()
    # A third start finds nothing left to do and charges nothing more.
    gw = ms.start(tmp_path, sim_url)
    try:
        assert ms.wallet(gw, key["account_id"]) == 1_500_000
        assert len(_settle_rows(gw, key["account_id"])) == 1
        db = gw.db()
        try:
            row = store.get_video_job(db, job["id"])
            # Billed once, against the hold taken again after the first restart.
            assert row.billed and row.hold_generation == 1 and row.charged_micros == 500_000
        finally:
            db.close()
        assert ms.invariants(gw) == []
    finally:
        gw.stop()


def test_reference_image_fetched_from_allow_listed_private_host(sim_url, tmp_path):
    gw = ms.start(tmp_path, sim_url, allow_private_hosts=True)
    try:
        key = gw.create_key(credits_usd=1.0)
        h = _h(key)
        ref = httpx.post(gw.url + "/v1/images/generations", headers=h,
                         json={"model": "img", "prompt": "ref"}).json()["data"][0]["url"]
        base = {"model": "img-inproc", "prompt": "p", "response_format": "b64_json"}
        plain = httpx.post(gw.url + "/v1/images/generations", headers=h, json=base)
        with_ref = httpx.post(gw.url + "/v1/images/generations", headers=h,
                              json={**base, "image_url": ref})
        assert plain.status_code == 200 and with_ref.status_code == 200, with_ref.text
        # The reference's bytes reached the in-process simulator and changed its output.
        assert plain.json()["data"][0]["b64_json"] != with_ref.json()["data"][0]["b64_json"]
        # Metadata stays refused even with private hosts allowed, redirects included.
        r = httpx.post(gw.url + "/v1/images/generations", headers=h,
                       json={**base, "image_url": sim_url +
                             "/_sim/redirect?to=http://169.254.169.254/latest/meta-data/"})
        assert r.status_code == 400 and "metadata" in r.json()["error"]["message"]
        r = httpx.post(gw.url + "/v1/images/generations", headers=h,
                       json={**base, "image_url": sim_url + "/_sim/big"})
        assert r.status_code == 200   # 4 MB is under the 10 MB default cap
        assert ms.invariants(gw) == []
    finally:
        gw.stop()


def test_oversize_reference_refused(sim_url, tmp_path):
    gw = ms.start(tmp_path, sim_url, allow_private_hosts=True, fetch_max_bytes=100_000)
    try:
        key = gw.create_key(credits_usd=1.0)
        r = httpx.post(gw.url + "/v1/images/generations", headers=_h(key),
                       json={"model": "img-inproc", "prompt": "p",
                             "image_url": sim_url + "/_sim/big"})
        assert r.status_code == 400 and "cap" in r.json()["error"]["message"]
        assert ms.wallet(gw, key["account_id"]) == 1_000_000
    finally:
        gw.stop()
