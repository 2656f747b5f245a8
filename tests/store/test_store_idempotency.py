"""Idempotency records: claim, replay, reuse, in-progress, release, lease and expiry."""
import pytest

import store
import store.idempotency as idem

T0 = 1_700_000_000.0


@pytest.fixture
def db(store_target):
    database = store.open_database(store_target)
    yield database
    database.close()


def claim(db, key="k", body="h1", now=T0, account="acct_a"):
    return idem.claim(db, account, key, body, request_id="req_1", lease_seconds=60, now=now)


def test_claim_complete_replay(db):
    c = claim(db)
    assert c.token and c.replay is None
    with pytest.raises(idem.InProgress):
        claim(db, now=T0 + 1)
    assert idem.complete(db, "acct_a", "k", c.token, status=200,
                         headers=[("X-Request-Id", "req_1"), ("X-Prism-Cost", "0.1")],
                         body=b"\x00body")
    again = claim(db, now=T0 + 2)
    assert again.token is None
    assert again.replay == idem.Stored("req_1", 200, [("X-Request-Id", "req_1"),
                                                      ("X-Prism-Cost", "0.1")], b"\x00body", True)


def test_other_body_is_refused_whatever_the_state(db):
    c = claim(db)
    with pytest.raises(idem.KeyReused):
        claim(db, body="h2")
    idem.complete(db, "acct_a", "k", c.token, status=200, headers=[], body=b"")
    with pytest.raises(idem.KeyReused):
        claim(db, body="h2")


def test_keys_are_per_account(db):
    claim(db, account="acct_a")
    assert claim(db, account="acct_b", body="other").token


def test_release_lets_a_retry_run(db):
    c = claim(db)
    assert idem.release(db, "acct_a", "k", c.token)
    assert claim(db, body="h2").token


def test_a_lapsed_lease_is_taken_over_and_the_old_owner_loses(db):
    old = claim(db)
    new = claim(db, now=T0 + 61)
    assert new.token and new.token != old.token
    assert not idem.complete(db, "acct_a", "k", old.token, status=200, headers=[], body=b"x")
    assert not idem.release(db, "acct_a", "k", old.token)
    assert idem.complete(db, "acct_a", "k", new.token, status=200, headers=[], body=b"y")
    assert claim(db, now=T0 + 62).replay.body == b"y"


def test_expiry_after_a_day_and_purge(db):
    c = claim(db)
    idem.complete(db, "acct_a", "k", c.token, status=200, headers=[], body=b"x")
    assert claim(db, body="h2", now=T0 + idem.TTL_SECONDS).token   # expired: a new request
    assert store.purge_idempotency(db, T0 + 3 * idem.TTL_SECONDS) == 1
    claim(db, key="pending")
    assert store.purge_idempotency(db, T0, pending_too=True) == 1
    assert idem.get_record(db, "acct_a", "pending") is None
