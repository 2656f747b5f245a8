"""/v1/files through the official openai SDK against a running gateway."""
from __future__ import annotations

import hashlib
import io
import os

import httpx
import openai
import pytest

import harness
import resources_gw


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    # Small caps so the 413 and 403 paths are cheap to reach.
    gw = resources_gw.start(tmp_path_factory.mktemp("files"), None,
                               resources={"max_file_bytes": 300_000,
                                          "storage_bytes_per_account": 500_000})
    yield gw
    gw.stop()


def client(gw, credits: float = 1.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(credits)["key"],
                         max_retries=0)


def test_upload_list_paginate_download_delete(gw):
    c = client(gw)
    payload = os.urandom(200_000) + b"\x00end"
    f = c.files.create(file=("data.bin", io.BytesIO(payload)), purpose="assistants")
    assert f.id.startswith("file-") and f.bytes == len(payload) and f.filename == "data.bin"
    assert f.purpose == "assistants" and f.status == "processed"
    assert c.files.retrieve(f.id).bytes == len(payload)
    got = c.files.content(f.id).read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    # The blob is named by its digest in the blob dir beside the store.
    blob = os.path.join(os.path.dirname(gw.db_path), "prism-blobs",
                        hashlib.sha256(payload).hexdigest()[:2], hashlib.sha256(payload).hexdigest())
    assert os.path.getsize(blob) == len(payload)

    small = [c.files.create(file=(f"n{i}.txt", io.BytesIO(b"note %d" % i)), purpose="user_data")
             for i in range(5)]
    page = c.files.list(limit=2, purpose="user_data")
    assert len(page.data) == 2 and page.has_more
    seen = [x.id for x in page]    # iterating a page follows `after` across pages
    assert sorted(seen) == sorted(s.id for s in small) and len(seen) == 5
    assert [x.id for x in c.files.list(order="asc", purpose="user_data")] == [s.id for s in small]

    deleted = c.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id
    assert not os.path.exists(blob)
    with pytest.raises(openai.NotFoundError):
        c.files.retrieve(f.id)


def test_same_content_twice_shares_one_blob_and_survives_one_delete(gw):
    c = client(gw)
    a = c.files.create(file=("a.txt", io.BytesIO(b"shared bytes")), purpose="assistants")
    b = c.files.create(file=("b.txt", io.BytesIO(b"shared bytes")), purpose="assistants")
    c.files.delete(a.id)
    assert c.files.content(b.id).read() == b"shared bytes"


def test_another_account_gets_404_never_403(gw):
    mine, theirs = client(gw), client(gw)
    f = mine.files.create(file=("secret.txt", io.BytesIO(b"secret")), purpose="assistants")
    for call in (lambda: theirs.files.retrieve(f.id), lambda: theirs.files.content(f.id),
                 lambda: theirs.files.delete(f.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert f.id not in [x.id for x in theirs.files.list()]
    assert mine.files.retrieve(f.id).id == f.id


def test_size_cap_413_and_account_cap_403_name_the_limit(gw):
    c = client(gw)
    with pytest.raises(openai.APIStatusError) as exc:
        c.files.create(file=("big.bin", io.BytesIO(b"x" * 400_000)), purpose="assistants")
    assert exc.value.status_code == 413 and "max_file_bytes" in exc.value.message
    c.files.create(file=("1.bin", io.BytesIO(b"y" * 280_000)), purpose="assistants")
    with pytest.raises(openai.PermissionDeniedError) as exc:
        c.files.create(file=("2.bin", io.BytesIO(b"z" * 280_000)), purpose="assistants")
    assert "storage_bytes_per_account" in exc.value.message
    staging = os.path.join(os.path.dirname(gw.db_path), "prism-blobs", "staging")
    assert os.listdir(staging) == []


def test_bad_uploads_are_400(gw):
    c = client(gw)
    with pytest.raises(openai.BadRequestError) as exc:
        c.files.create(file=("a.txt", io.BytesIO(b"a")), purpose="nonsense")  # type: ignore[arg-type]
    assert "purpose" in exc.value.message
    key = gw.create_key(1.0)["key"]
    r = httpx.post(gw.url + "/v1/files", headers={"authorization": f"Bearer {key}"},
                   json={"purpose": "assistants"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]
    r = httpx.post(gw.url + "/v1/files", headers={"authorization": f"Bearer {key}"},
                   data={"purpose": "assistants"}, files={"other": ("x", b"x")})
    assert r.status_code == 400 and "file" in r.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError):
        c.files.create(file=("a.txt", io.BytesIO(b"a")), purpose="assistants",
                       expires_after={"anchor": "created_at", "seconds": 5})


def test_expired_files_are_swept(tmp_path):
    import store.files as sf
    gw = resources_gw.start(tmp_path, None)
    try:
        c = client(gw)
        f = c.files.create(file=("t.txt", io.BytesIO(b"short-lived")), purpose="assistants",
                           expires_after={"anchor": "created_at", "seconds": 3600})
        assert f.expires_at and f.expires_at - f.created_at == 3600
        vs = c.vector_stores.create(file_ids=[f.id])
    finally:
        gw.stop()
    db = gw.db()
    blob_root = os.path.join(str(tmp_path), "prism-blobs")
    from gateway.resources.blobs import BlobDir
    # An expired file leaves the vector stores that held it too.
    assert sf.sweep_expired_files(db, BlobDir(blob_root).path_of,
                                  now=f.expires_at + 1) == {f.id: [vs.id]}
    assert sf.StoredFile.select().where(sf.StoredFile.id == f.id).count(db) == 0
    assert not any(n for d in os.listdir(blob_root) if d != "staging"
                   for n in os.listdir(os.path.join(blob_root, d)))
