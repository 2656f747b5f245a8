"""/v1/vector_stores through the official openai SDK against a running gateway."""
from __future__ import annotations

import io
import json
import os
import time

import openai
import pytest

import harness
import store
import resources_gw
from pdfgen import make_pdf

PLANTED = "The vault combination for Project Heliotrope is seven four nine two."


def filler(n: int, seed: str) -> str:
    words = ["river", "market", "garden", "signal", "copper", "lantern", "meadow", "orbit",
             "harbor", "canvas", "thunder", "pepper", "marble", "violet", "ladder", "pillow"]
    return "\n".join(" ".join(words[(i * 7 + j * 3 + len(seed)) % len(words)] for j in range(12))
                     + "." for i in range(n))


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = resources_gw.start(tmp_path_factory.mktemp("vs"), None)
    yield gw
    gw.stop()


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.create_key(1.0)["key"],
                         max_retries=0)


def upload(c, name: str, data: bytes):
    return c.files.create(file=(name, io.BytesIO(data)), purpose="assistants")


def wait_store(c, store_id: str, timeout: float = 60):
    deadline = time.time() + timeout
    while True:
        vs = c.vector_stores.retrieve(store_id)
        if vs.status != "in_progress" or time.time() > deadline:
            return vs
        time.sleep(0.1)


def test_create_from_files_poll_and_search_finds_planted_chunk_first(gw):
    c = client(gw)
    doc = filler(300, "a") + "\n" + PLANTED + "\n" + filler(300, "b")
    ids = [upload(c, "handbook.md", doc.encode()).id,
           upload(c, "other.txt", filler(200, "c").encode()).id]
    vs = c.vector_stores.create(name="kb", file_ids=ids, metadata={"team": "ops"},
                                chunking_strategy={"type": "static", "static": {
                                    "max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}})
    assert vs.object == "vector_store" and vs.metadata == {"team": "ops"}
    vs = wait_store(c, vs.id)
    assert vs.status == "completed" and vs.file_counts.completed == 2 and vs.usage_bytes > 0
    res = c.vector_stores.search(vs.id, query="What is the vault combination for Heliotrope?")
    assert res.data and PLANTED in res.data[0].content[0].text
    assert res.data[0].filename == "handbook.md" and res.data[0].score == pytest.approx(1.0)
    assert len(res.data) <= 10
    files = c.vector_stores.files.list(vs.id, filter="completed")
    assert sorted(f.id for f in files) == sorted(ids)
    assert files.data[0].chunking_strategy.static.max_chunk_size_tokens == 200
    # rewrite_query reports the keyword form it searched with
    res = c.vector_stores.search(vs.id, query="what is the vault combination?", rewrite_query=True,
                                 max_num_results=1)
    assert res.search_query == ["vault combination"] and len(res.data) == 1
    c.vector_stores.update(vs.id, name="renamed")
    assert c.vector_stores.retrieve(vs.id).name == "renamed"
    assert vs.id in [s.id for s in c.vector_stores.list()]
    assert c.vector_stores.delete(vs.id).deleted
    with pytest.raises(openai.NotFoundError):
        c.vector_stores.retrieve(vs.id)


def test_files_with_attributes_filters_and_poll_helpers(gw):
    c = client(gw)
    vs = c.vector_stores.create(name="filtered")
    a = upload(c, "a.txt", b"Quarterly revenue grew in the northern region.")
    b = upload(c, "b.txt", b"Quarterly revenue fell in the southern region.")
    fa = c.vector_stores.files.create_and_poll(file_id=a.id, vector_store_id=vs.id,
                                               attributes={"region": "north", "year": 2024})
    assert fa.status == "completed" and fa.attributes == {"region": "north", "year": 2024}
    batch = c.vector_stores.file_batches.create_and_poll(vector_store_id=vs.id, file_ids=[b.id])
    assert batch.status == "completed" and batch.file_counts.completed == 1
    assert [f.id for f in c.vector_stores.file_batches.list_files(batch.id, vector_store_id=vs.id)] == [b.id]
    c.vector_stores.files.update(file_id=b.id, vector_store_id=vs.id,
                                 attributes={"region": "south", "year": 2023})
    q = "quarterly revenue region"
    only_north = c.vector_stores.search(vs.id, query=q, filters={
        "type": "eq", "key": "region", "value": "north"})
    assert [d.file_id for d in only_north.data] == [a.id]
    compound = c.vector_stores.search(vs.id, query=q, filters={"type": "and", "filters": [
        {"type": "gte", "key": "year", "value": 2023}, {"type": "in", "key": "region",
                                                       "value": ["south", "east"]}]})
    assert [d.file_id for d in compound.data] == [b.id]
    assert len(c.vector_stores.search(vs.id, query=[q, "northern"]).data) == 2
    strict = c.vector_stores.search(vs.id, query=q, ranking_options={"score_threshold": 0.99})
    assert all(d.score >= 0.99 for d in strict.data)
    c.vector_stores.files.delete(file_id=a.id, vector_store_id=vs.id)
    assert [d.file_id for d in c.vector_stores.search(vs.id, query="northern").data] == [b.id]
    with pytest.raises(openai.BadRequestError):
        c.vector_stores.search(vs.id, query=q, filters={"type": "like", "key": "x", "value": 1})
    with pytest.raises(openai.BadRequestError):     # each query is embedded: bounded
        c.vector_stores.search(vs.id, query=[q] * 11)
    with pytest.raises(openai.BadRequestError):
        c.vector_stores.search(vs.id, query="x" * 8001)
    with pytest.raises(openai.BadRequestError):
        c.vector_stores.create(chunking_strategy={"type": "static", "static": {
            "max_chunk_size_tokens": 50, "chunk_overlap_tokens": 10}})


def test_parses_pdf_html_json_and_fails_binary(gw):
    c = client(gw)
    pdf = make_pdf([["Nothing to see on page one."], ["The falcon lands at dawn on page two."]])
    html = b"<html><head><style>x{}</style></head><body><p>Otters juggle pebbles.</p></body></html>"
    js = json.dumps({"inventory": {"widgets": 12, "note": "gears are blue"}}).encode()
    ids = [upload(c, n, d).id for n, d in (("doc.pdf", pdf), ("page.html", html), ("data.json", js),
                                          ("blob.bin", b"\x00\x01\x02binary"))]
    vs = c.vector_stores.file_batches.create_and_poll(
        vector_store_id=c.vector_stores.create().id, file_ids=ids)
    assert vs.file_counts.completed == 3 and vs.file_counts.failed == 1
    failed = c.vector_stores.files.list(vs.vector_store_id, filter="failed").data
    assert failed[0].id == ids[3] and failed[0].last_error.code == "unsupported_file"
    for query, expected in (("falcon dawn", ids[0]), ("otters juggle", ids[1]),
                            ("gears blue", ids[2])):
        top = c.vector_stores.search(vs.vector_store_id, query=query).data[0]
        assert top.file_id == expected, query
    assert "style" not in c.vector_stores.search(vs.vector_store_id, query="otters").data[0].content[0].text


def test_another_account_sees_none_of_it(gw):
    mine, theirs = client(gw), client(gw)
    f = upload(mine, "m.txt", b"mine only")
    vs = mine.vector_stores.create(file_ids=[f.id])
    wait_store(mine, vs.id)
    for call in (lambda: theirs.vector_stores.retrieve(vs.id),
                 lambda: theirs.vector_stores.search(vs.id, query="mine"),
                 lambda: theirs.vector_stores.files.list(vs.id),
                 lambda: theirs.vector_stores.files.retrieve(file_id=f.id, vector_store_id=vs.id),
                 lambda: theirs.vector_stores.delete(vs.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    # Nor can they put my file into a store of theirs.
    their_vs = theirs.vector_stores.create()
    with pytest.raises(openai.NotFoundError):
        theirs.vector_stores.files.create(file_id=f.id, vector_store_id=their_vs.id)
    assert vs.id not in [s.id for s in theirs.vector_stores.list()]


def _ingest_rows(gw, key: str) -> list[dict]:
    db = gw.db()
    try:
        account = store.find_key_by_hash(db, store.hash_key(key)).account_id
        rows, _ = store.usage_rows(db, account, limit=1000)
    finally:
        db.close()
    return [r for r in rows if r["route"] == "/v1/vector_stores/files" and r["status"] == 200]


def test_ingestion_survives_a_restart_and_bills_each_batch_once(tmp_path):
    gw = resources_gw.start(tmp_path, None)
    key = gw.create_key(10.0)["key"]     # ~0.6 M tokens to embed, twice in this test
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    big = (filler(40000, "x") + "\n" + PLANTED + "\n").encode()
    f = upload(c, "big.md", big)
    vs = c.vector_stores.create(file_ids=[f.id])
    deadline = time.time() + 60
    while len(_ingest_rows(gw, key)) < 2:     # two batches embedded and paid for
        assert time.time() < deadline
        time.sleep(0.02)
    assert c.vector_stores.retrieve(vs.id).status == "in_progress"
    gw.stop()                       # mid-ingestion
    gw = resources_gw.start(tmp_path, None)
    try:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        done = wait_store(c, vs.id, timeout=120)
        assert done.file_counts.completed == 1, c.vector_stores.files.list(vs.id).data
        assert done.status == "completed"
        assert PLANTED in c.vector_stores.search(vs.id, query="vault combination Heliotrope").data[0].content[0].text
        resumed = _ingest_rows(gw, key)
        # The same file once more, uninterrupted: what one ingestion costs.
        again = c.vector_stores.create(file_ids=[f.id])
        assert wait_store(c, again.id, timeout=120).file_counts.completed == 1
        clean = sum(r["tokens_in"] for r in _ingest_rows(gw, key)) - sum(r["tokens_in"] for r in resumed)
        # The batches paid for before the restart were kept, not embedded again (at most
        # the one in flight when it stopped is paid twice).
        assert sum(r["tokens_in"] for r in resumed) <= clean + max(r["tokens_in"] for r in resumed)
        db = gw.db()
        try:
            assert store.check_invariants(db) == []
        finally:
            db.close()
    finally:
        gw.stop()


def _books(gw, key: str):
    db = gw.db()
    try:
        account = store.find_key_by_hash(db, store.hash_key(key)).account_id
        rows, _ = store.usage_rows(db, account)
        return rows, store.get_wallet(db, account), store.check_invariants(db)
    finally:
        db.close()


def test_ingestion_and_queries_are_billed_embeddings_calls(gw):
    key = gw.create_key(1.0)["key"]
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    f = upload(c, "kb.md", (filler(200, "k") + "\n" + PLANTED).encode())
    vs = c.vector_stores.create(file_ids=[f.id])
    assert wait_store(c, vs.id).file_counts.completed == 1
    rows, wallet, problems = _books(gw, key)
    ingest = [r for r in rows if r["route"] == "/v1/vector_stores/files"]
    assert ingest and all(r["model"] == "prism-embed" and r["status"] == 200 for r in ingest)
    # 1 USD per million tokens: a micro-dollar per token embedded.
    assert all(r["cost_micros"] == r["tokens_in"] > 0 for r in ingest)
    res = c.vector_stores.search(vs.id, query="vault combination Heliotrope")
    assert PLANTED in res.data[0].content[0].text
    rows, wallet2, problems = _books(gw, key)
    queries = [r for r in rows if r["route"] == "/v1/vector_stores/search"]
    assert len(queries) == 1 and queries[0]["cost_micros"] > 0
    spent = sum(r["cost_micros"] for r in rows)
    assert wallet2.balance_micros == 1_000_000 - spent and problems == []


def test_an_account_that_cannot_pay_gets_the_file_failed(gw):
    key = gw.create_key(0.0)["key"]
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    f = upload(c, "kb.md", b"Some words that cost money to embed.")
    vs = c.vector_stores.create(file_ids=[f.id])
    done = wait_store(c, vs.id)
    assert done.status == "completed" and done.file_counts.failed == 1
    got = c.vector_stores.files.retrieve(file_id=f.id, vector_store_id=vs.id)
    assert got.status == "failed" and got.last_error.code == "insufficient_balance"
    assert "prism-embed" in got.last_error.message
    # Nothing searchable: no query is embedded, nothing is held or billed.
    assert c.vector_stores.search(vs.id, query="words").data == []
    rows, wallet, problems = _books(gw, key)
    assert wallet.balance_micros == 0 and problems == []
    assert all(r["cost_micros"] == 0 for r in rows)


def test_deleting_a_file_removes_it_from_every_vector_store(gw):
    from store.vector_index import VectorIndex
    c = client(gw)
    gone = upload(c, "gone.md", (filler(50, "g") + "\n" + PLANTED).encode())
    kept = upload(c, "kept.md", b"The lighthouse keeper counts gulls every morning.")
    stores = [c.vector_stores.create(file_ids=[gone.id, kept.id]).id for _ in range(2)]
    before = [wait_store(c, s) for s in stores]
    assert all(v.file_counts.completed == 2 for v in before)
    assert PLANTED in c.vector_stores.search(stores[1], query="vault Heliotrope").data[0].content[0].text
    assert c.files.delete(gone.id).deleted
    index = VectorIndex(os.path.join(os.path.dirname(gw.socket_path), "prism-vectors"))
    for s, old in zip(stores, before):
        vs = c.vector_stores.retrieve(s)
        assert vs.file_counts.completed == 1 and vs.file_counts.total == 1
        assert 0 < vs.usage_bytes < old.usage_bytes
        assert [f.id for f in c.vector_stores.files.list(s)] == [kept.id]
        hits = c.vector_stores.search(s, query="vault combination Heliotrope lighthouse").data
        assert hits and all(h.file_id == kept.id for h in hits)
        assert index.file_chunks(s, gone.id) == [] and index.file_chunks(s, kept.id)
    with pytest.raises(openai.NotFoundError):
        c.vector_stores.files.retrieve(file_id=gone.id, vector_store_id=stores[0])


def test_cancelling_a_batch_stops_embedding_its_file(gw):
    key = gw.create_key(10.0)["key"]
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    f = upload(c, "big.md", filler(40000, "z").encode())     # several embedding batches
    vs = c.vector_stores.create()
    batch = c.vector_stores.file_batches.create(vector_store_id=vs.id, file_ids=[f.id])
    deadline = time.time() + 60
    while not _ingest_rows(gw, key):
        assert time.time() < deadline
        time.sleep(0.02)
    c.vector_stores.file_batches.cancel(batch.id, vector_store_id=vs.id)
    at_cancel = len(_ingest_rows(gw, key))
    time.sleep(2)
    assert len(_ingest_rows(gw, key)) <= at_cancel + 1      # only the batch in flight
    got = c.vector_stores.files.retrieve(file_id=f.id, vector_store_id=vs.id)
    assert got.status == "cancelled"
    assert c.vector_stores.search(vs.id, query="river market").data == []


def test_a_process_beside_a_live_one_leaves_its_ingestion_alone(tmp_path):
    """Several processes on one store: a process that starts while another is alive must
    not resume that one's pending files (it would embed and bill them a second time);
    the next process to start alone does."""
    shared = {"server": {"workers": 2}}      # a store other processes may share
    gw = resources_gw.start(tmp_path, None, **shared)
    key = gw.create_key(10.0)["key"]
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    f = upload(c, "big.md", (filler(40000, "y") + "\n" + PLANTED + "\n").encode())
    vs = c.vector_stores.create(file_ids=[f.id])
    deadline = time.time() + 60
    while len(_ingest_rows(gw, key)) < 1:
        assert time.time() < deadline
        time.sleep(0.02)
    gw.stop()                               # mid-ingestion
    db = gw.db()
    try:                                    # a neighbour that is alive and well
        store.cluster.heartbeat(db, "node_neighbour_1_abc", "elsewhere", 1, time.time(), {})
    finally:
        db.close()
    gw = resources_gw.start(tmp_path, None, **shared)
    try:
        paid = len(_ingest_rows(gw, key))
        time.sleep(1.5)
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        assert c.vector_stores.retrieve(vs.id).status == "in_progress"
        assert len(_ingest_rows(gw, key)) == paid          # not taken over
    finally:
        gw.stop()
    db = gw.db()
    try:
        store.cluster.leave(db, "node_neighbour_1_abc")    # the neighbour is gone
    finally:
        db.close()
    gw = resources_gw.start(tmp_path, None, **shared)
    try:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        done = wait_store(c, vs.id, timeout=120)
        assert done.status == "completed" and done.file_counts.completed == 1
        db = gw.db()
        try:
            assert store.check_invariants(db) == []
        finally:
            db.close()
    finally:
        gw.stop()
