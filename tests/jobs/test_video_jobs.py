"""Videos on the job runner: each video is a runner job with its own id, which ends
with the video and records what it cost; the dashboard's cancel ends a running video
as a client cancel would (hold voided, nothing charged)."""
from __future__ import annotations

import time

import httpx
import pytest

import store
from tests.media import media_setup as ms


@pytest.fixture
def gw(sim_url, tmp_path):
    g = ms.start(tmp_path, sim_url)
    yield g
    g.stop()


def _runner_job(gw, job_id: str, cond, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = gw.db()
        try:
            job = store.jobs.get_job(db, job_id)
        finally:
            db.close()
        if job is not None and cond(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"runner job {job_id}: {job and job.state}")


def test_video_runs_as_a_runner_job(gw):
    key = gw.create_key(credits_usd=2.0)
    h = {"authorization": f"Bearer {key['key']}"}
    vid = httpx.post(gw.url + "/v1/videos", headers=h,
                     json={"model": "vid", "prompt": "a dog [[sim video_delay=0.5]]"}).json()
    running = _runner_job(gw, vid["id"], lambda j: j.state == "running")
    assert running.kind == "video" and running.lease_owner
    done = _runner_job(gw, vid["id"], lambda j: j.state == "succeeded")
    assert done.cost_micros == 500_000
    assert ms.wallet(gw, key["account_id"]) == 1_500_000 and ms.invariants(gw) == []


def test_operator_cancel_of_a_video_voids_it(gw):
    import asyncio
    from gateway.control import wire
    from tui.client import ControlClient
    key = gw.create_key(credits_usd=2.0)
    h = {"authorization": f"Bearer {key['key']}"}
    vid = httpx.post(gw.url + "/v1/videos", headers=h,
                     json={"model": "vid", "prompt": "slow [[sim video_delay=5]]"}).json()
    _runner_job(gw, vid["id"], lambda j: j.state == "running")

    async def cancel():
        client = ControlClient(gw.socket_path, lambda msg: None)
        await client.connect()
        try:
            listed = await client.call(wire.ListJobs)
            assert vid["id"] in {j["id"] for j in listed["items"]}
            return await client.call(wire.CancelJob, job_id=vid["id"])
        finally:
            await client.close()
    asyncio.run(cancel())
    _runner_job(gw, vid["id"], lambda j: j.state == "cancelled")
    assert httpx.get(f"{gw.url}/v1/videos/{vid['id']}", headers=h).json()["status"] == "cancelled"
    assert ms.wallet(gw, key["account_id"]) == 2_000_000
    assert ms.open_holds(gw) == [] and ms.invariants(gw) == []
