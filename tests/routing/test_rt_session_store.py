"""store.sessions: sliding expiry, the message cap, compaction's version guard and
per-account isolation, on a real SQLite file with explicit clocks."""
from __future__ import annotations

import json

import pytest

import store

TTL = 1800.0


@pytest.fixture
def db(tmp_path):
    d = store.open_database(str(tmp_path / "s.db"))
    yield d
    d.close()


def _env(text, tokens=5):
    return {"t": tokens, "m": {"role": "user", "parts": [{"type": "text", "text": text}]}}


def _fold(previous, envelopes):
    texts = [e["m"]["parts"][0]["text"] for e in envelopes]
    return ((previous + " | " if previous else "") + ",".join(texts), 1)


def _append(db, sid, texts, now, account="acct_a", system=None, max_messages=100):
    return store.append_turn(db, account, sid, messages=[_env(t) for t in texts], system=system,
                             system_tokens=7 if system else 0, now=now, ttl=TTL,
                             max_messages=max_messages, fold=_fold)


def test_append_creates_then_extends_and_counts(db):
    s = _append(db, "s1", ["a", "b"], now=100.0, system=[{"role": "system", "parts": []}])
    assert (s.message_count, s.tokens, s.created_at, s.expires_at) == (2, 17, 100.0, 100.0 + TTL)
    s = _append(db, "s1", ["c"], now=200.0)
    assert s.message_count == 3 and s.tokens == 22 and s.created_at == 100.0
    assert json.loads(s.system) == [{"role": "system", "parts": []}]   # kept when not resent


def test_expiry_slides_with_every_use_and_then_the_session_is_gone(db):
    _append(db, "s1", ["a"], now=0.0)
    assert store.open_session(db, "acct_a", "s1", now=TTL - 1, ttl=TTL).expires_at == 2 * TTL - 1
    # 29 minutes after that use it is still alive: the TTL slid.
    assert store.open_session(db, "acct_a", "s1", now=2 * TTL - 2, ttl=TTL) is not None
    assert store.open_session(db, "acct_a", "s1", now=10 * TTL, ttl=TTL) is None
    assert store.peek_session(db, "acct_a", "s1", now=0.0) is None   # removed on sight
    s = _append(db, "s1", ["fresh"], now=10 * TTL)
    assert s.message_count == 1 and s.created_at == 10 * TTL


def test_sessions_are_per_account(db):
    _append(db, "shared-name", ["mine"], now=0.0, account="acct_a")
    assert store.open_session(db, "acct_b", "shared-name", now=1.0, ttl=TTL) is None
    assert not store.delete_session(db, "acct_b", "shared-name", now=1.0)
    b = _append(db, "shared-name", ["theirs"], now=1.0, account="acct_b")
    assert b.message_count == 1
    a = store.open_session(db, "acct_a", "shared-name", now=2.0, ttl=TTL)
    assert a.message_count == 1 and "mine" in a.messages and "theirs" not in a.messages
    assert store.delete_session(db, "acct_a", "shared-name", now=3.0)
    assert store.open_session(db, "acct_b", "shared-name", now=4.0, ttl=TTL) is not None


def test_the_cap_folds_the_oldest_into_the_summary(db):
    _append(db, "s", [f"m{i}" for i in range(8)], now=0.0, max_messages=10)
    s = _append(db, "s", ["x", "y", "z", "w"], now=1.0, max_messages=10)
    assert s.message_count == 10 and s.summary == "m0,m1"
    assert [e["m"]["parts"][0]["text"] for e in json.loads(s.messages)][:2] == ["m2", "m3"]


def test_compaction_applies_only_to_the_version_it_read(db):
    s = _append(db, "s", [f"m{i}" for i in range(6)], now=0.0)
    _append(db, "s", ["late"], now=1.0)                # a turn lands meanwhile
    assert store.compact_session(db, "acct_a", "s", expect_version=s.version, drop=4,
                                 summary="old", summary_tokens=1, now=2.0, ttl=TTL) is None
    s = store.open_session(db, "acct_a", "s", now=3.0, ttl=TTL)
    done = store.compact_session(db, "acct_a", "s", expect_version=s.version, drop=4,
                                 summary="sum", summary_tokens=3, now=4.0, ttl=TTL)
    assert done.message_count == 3 and done.summary == "sum" and done.tokens == 3 + 3 * 5


def test_purge_removes_only_expired(db):
    _append(db, "old", ["a"], now=0.0)
    _append(db, "new", ["b"], now=TTL)
    assert store.purge_sessions(db, TTL + 1) == 1
    assert store.peek_session(db, "acct_a", "new", now=TTL + 1) is not None
