"""Stored Responses-API responses: account scoping, expiry, deletion, and the table
appearing on a store created before it existed."""
import json

import pytest

import store


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "prism.db")


@pytest.fixture
def db(path):
    database = store.open_database(path)
    yield database
    database.close()


def save(db, rid="resp_1", account="acct_a", now=1000.0, **kw):
    store.save_response(db, rid, account, json.dumps([{"role": "user", "content": "hi"}]),
                        json.dumps({"id": rid, "output": []}), now=now, **kw)


def test_saved_response_reads_back_for_its_account_only(db):
    save(db)
    got = store.get_response(db, "resp_1", "acct_a", now=1001.0)
    assert got.request_items == [{"role": "user", "content": "hi"}]
    assert got.response == {"id": "resp_1", "output": []}
    assert got.expires_at == 1000.0 + store.responses.DEFAULT_TTL
    assert store.get_response(db, "resp_1", "acct_b", now=1001.0) is None
    assert store.get_response(db, "resp_missing", "acct_a", now=1001.0) is None


def test_delete_is_scoped_and_final(db):
    save(db)
    assert store.delete_response(db, "resp_1", "acct_b") is False
    assert store.delete_response(db, "resp_1", "acct_a") is True
    assert store.delete_response(db, "resp_1", "acct_a") is False
    assert store.get_response(db, "resp_1", "acct_a", now=1001.0) is None


def test_expired_responses_vanish_and_are_purged_on_save(db):
    save(db, "resp_old", ttl=10.0, now=1000.0)
    assert store.get_response(db, "resp_old", "acct_a", now=1011.0) is None
    save(db, "resp_new", now=1011.0)
    assert store.StoredResponse.select().where(
        store.StoredResponse.id == "resp_old").count(db) == 0
    save(db, "resp_short", ttl=1.0, now=2000.0)
    assert store.purge_expired_responses(db, now=3000.0) == 1


def test_table_appears_on_a_store_made_before_it(path):
    old = store.open_database(path)
    old.execute_sql("DROP TABLE stored_response")
    assert not old.table_exists("stored_response")
    old.close()
    reopened = store.open_database(path)
    try:
        assert reopened.table_exists("stored_response")
        assert store.schema_version(reopened) == store.SCHEMA_VERSION
        save(reopened)
        assert store.get_response(reopened, "resp_1", "acct_a", now=1001.0) is not None
    finally:
        reopened.close()
