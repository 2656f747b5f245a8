"""store.flags and store.overview: overrides flag by flag, audit in the same
transaction, operator summaries."""
from __future__ import annotations

import pytest

import store


@pytest.fixture
def db(store_target):
    database = store.open_database(store_target)
    yield database
    database.close()


def test_overrides_are_per_flag_and_audited(db):
    assert store.load_provider_flags(db) == {}
    after = store.set_provider_flags(db, "sim", actor="ops", images=True, now=10.0)
    assert after == {"enabled": None, "images": True, "video": None}
    after = store.set_provider_flags(db, "sim", actor="ops", enabled=False, now=11.0)
    assert after == {"enabled": False, "images": True, "video": None}
    assert store.load_provider_flags(db) == {"sim": after}
    log = store.audit_log(db)
    assert [(a["at"], a["action"], a["detail"]["set"], a["detail"]["before"]["images"])
            for a in log] == [(11.0, "provider.flags", {"enabled": False}, True),
                              (10.0, "provider.flags", {"images": True}, None)]


def test_flag_changes_are_checked(db):
    with pytest.raises(ValueError):
        store.set_provider_flags(db, "sim", actor="ops")
    with pytest.raises(TypeError):
        store.set_provider_flags(db, "sim", actor="ops", images=1)
    assert store.load_provider_flags(db) == {} and store.audit_log(db) == []


def test_audited_is_one_transaction(db):
    account, _, _ = store.create_account_with_key(db, "a", 100)
    store.audited(db, "ops", "wallet.adjust", {"n": 1}, store.top_up, account.id, 5, "why")
    assert store.get_wallet(db, account.id).balance_micros == 105
    with pytest.raises(store.WouldGoNegative):
        store.audited(db, "ops", "wallet.adjust", {"n": 2}, store.adjust, account.id, -500, "no")
    # The refused change left no audit row behind, and a failing audit would undo the change.
    assert [a["detail"]["n"] for a in store.audit_log(db)] == [1]

    def boom(result):
        raise RuntimeError("describe failed")
    with pytest.raises(RuntimeError):
        store.audited(db, "ops", "wallet.adjust", {}, store.top_up, account.id, 7, "x",
                      describe=boom)
    assert store.get_wallet(db, account.id).balance_micros == 105
    assert store.check_invariants(db) == []


def test_overview(db):
    a1, _, _ = store.create_account_with_key(db, "one", 1_000)
    a2, k2, _ = store.create_account_with_key(db, "two", 500)
    store.create_key(db, a2.id, "two-b")
    store.revoke_key(db, k2.id)
    store.reserve(db, a1.id, "req_1", 300, 60)
    rows = {r["id"]: r for r in store.account_summaries(db)}
    assert rows[a1.id] | {"created_at": 0} == {
        "id": a1.id, "name": "one", "plan": None, "created_at": 0, "balance_micros": 1_000,
        "held_micros": 300, "available_micros": 700, "active_keys": 1, "open_holds": 1}
    assert rows[a2.id]["active_keys"] == 1 and rows[a2.id]["open_holds"] == 0
    holds = store.open_hold_rows(db)
    assert [(h["account_id"], h["request_id"], h["amount_micros"]) for h in holds] == [
        (a1.id, "req_1", 300)]
    assert store.open_hold_rows(db, a2.id) == []
    assert store.count_open_holds(db) == 1
    assert len(store.account_summaries(db, limit=1)) == 1
