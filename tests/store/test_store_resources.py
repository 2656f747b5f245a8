"""store/assistants.end_open_children and store/files deletion across vector stores,
on each store engine."""
from __future__ import annotations

import json
import time

import pytest

import store
import store.assistants as sa
import store.files as sf
import store.vector_stores as svs


@pytest.fixture
def db(store_target):
    database = store.open_database(store_target)
    yield database
    database.close()


def _obj(id_: str, status: str, **extra) -> dict:
    return {"id": id_, "created_at": int(time.time()), "status": status, **extra}


def test_a_failed_run_ends_its_open_steps_and_messages(db):
    sa.insert(db, sa.Run, [_obj("run_1", "failed")], "acct", "thread_1")
    sa.insert(db, sa.RunStep, [_obj("step_1", "in_progress"), _obj("step_2", "completed")],
              "acct", "run_1")
    sa.insert(db, sa.ThreadMessage, [_obj("msg_1", "in_progress", run_id="run_1"),
                                     _obj("msg_2", "in_progress", run_id="run_other")],
              "acct", "thread_1")
    err = {"code": "server_error", "message": "restarted"}
    assert sa.end_open_children(db, "run_1", "someone_else", "failed", 5, err) == 0
    assert sa.end_open_children(db, "run_1", "acct", "failed", 5, err) == 2
    step = sa.get(db, sa.RunStep, "step_1", "acct")
    assert step["status"] == "failed" and step["failed_at"] == 5 and step["last_error"] == err
    assert sa.get(db, sa.RunStep, "step_2", "acct")["status"] == "completed"
    msg = sa.get(db, sa.ThreadMessage, "msg_1", "acct")
    assert msg["status"] == "incomplete" and msg["incomplete_details"] == {"reason": "run_failed"}
    assert sa.get(db, sa.ThreadMessage, "msg_2", "acct")["status"] == "in_progress"


def test_deleting_a_file_takes_it_out_of_every_vector_store(db, tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"x")
    sf.StoredFile.insert(id="file-1", account_id="acct", filename="a.txt", purpose="assistants",
                         bytes=1, sha256="aa", created_at=time.time()).execute(db)
    now = time.time()
    for vs in ("vs_1", "vs_2"):
        svs.create_store(db, {"id": vs, "account_id": "acct", "embedding_model": "m",
                              "chunking": "{}", "created_at": now, "last_active_at": now},
                         [{"vector_store_id": vs, "file_id": "file-1", "account_id": "acct",
                           "status": "completed", "chunking": "{}", "usage_bytes": 10,
                           "created_at": now}])
    assert sf.delete_file(db, "file-1", "other", lambda h: str(blob)) is None
    assert sorted(sf.delete_file(db, "file-1", "acct", lambda h: str(blob))) == ["vs_1", "vs_2"]
    assert not blob.exists()
    for vs in ("vs_1", "vs_2"):
        assert svs.counts(db, vs)["total"] == 0 and svs.store_usage(db, vs) == 0
    assert json.loads(svs.get_store(db, "vs_1", "acct").chunking) == {}
