"""Accounts and API keys."""
import hashlib

import pytest

import store


@pytest.fixture
def db(store_target):
    database = store.open_database(store_target)
    yield database
    assert store.check_invariants(database) == []
    database.close()


def test_create_account_makes_an_empty_wallet(db):
    account = store.create_account(db, "acme", plan="pro")
    assert account.id.startswith("acct_")
    assert account.plan == "pro" and account.default_mode is None
    wallet = store.get_wallet(db, account.id)
    assert (wallet.balance_micros, wallet.held_micros) == (0, 0)
    assert store.get_account(db, account.id).name == "acme"


def test_create_key_stores_only_the_hash(db):
    account = store.create_account(db, "acme")
    key, plaintext = store.create_key(db, account.id, "ci")
    assert plaintext.startswith("sk-prism-")
    assert len(plaintext) >= len("sk-prism-") + 43  # 32 random bytes, base64url
    assert key.id.startswith("key_")
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert key.prefix == plaintext[:12]
    stored = db.execute_sql("SELECT * FROM api_key").fetchall()
    assert not any(plaintext in str(value) for row in stored for value in row)


def test_keys_are_unique(db):
    account = store.create_account(db, "acme")
    plaintexts = {store.create_key(db, account.id, "k")[1] for _ in range(50)}
    assert len(plaintexts) == 50


def test_create_key_for_unknown_account(db):
    with pytest.raises(store.AccountNotFound):
        store.create_key(db, "acct_nope", "k")


def test_create_account_with_key_in_one_transaction(db):
    statements = []
    if store.is_postgres(db):
        pytest.skip("statement tracing is sqlite3's (the SQL is the same on PostgreSQL)")
    db.connection().set_trace_callback(statements.append)
    account, key, plaintext = store.create_account_with_key(db, "acme", 2_500_000, "pro")
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert key.account_id == account.id and account.plan == "pro"
    assert store.get_wallet(db, account.id).balance_micros == 2_500_000
    [entry] = store.ledger_rows(db, account.id)
    assert (entry.kind, entry.amount_micros, entry.balance_after) == ("topup", 2_500_000,
                                                                      2_500_000)
    assert store.find_key_by_hash(db, store.hash_key(plaintext)).id == key.id


def test_create_account_with_key_and_no_credits_posts_nothing(db):
    account, _, _ = store.create_account_with_key(db, "acme", 0)
    assert store.ledger_rows(db, account.id) == []


def test_create_account_with_negative_credits_creates_nothing(db):
    with pytest.raises(ValueError):
        store.create_account_with_key(db, "acme", -1)
    assert store.Account.select().count(db) == 0


def test_find_key_by_hash_and_revoke(db):
    account = store.create_account(db, "acme")
    key, plaintext = store.create_key(db, account.id, "ci")
    digest = store.hash_key(plaintext)
    assert store.find_key_by_hash(db, digest).id == key.id
    assert store.find_key_by_hash(db, store.hash_key(plaintext + "x")) is None

    assert store.revoke_key(db, key.id, now=123.0) is True
    assert store.revoke_key(db, key.id) is False   # already revoked
    assert store.revoke_key(db, "key_nope") is False
    assert store.find_key_by_hash(db, digest) is None
    revoked = store.find_key_by_hash(db, digest, include_revoked=True)
    assert revoked.revoked_at == 123.0
    assert store.load_active_keys(db) == []


def test_list_get_update_keys(db):
    acme = store.create_account(db, "acme")
    other = store.create_account(db, "other")
    k1, _ = store.create_key(db, acme.id, "one", now=1.0)
    k2, _ = store.create_key(db, acme.id, "two", now=2.0)
    k3, _ = store.create_key(db, other.id, "three", now=3.0)
    assert [k.id for k in store.list_keys(db)] == [k1.id, k2.id, k3.id]
    assert [k.id for k in store.list_keys(db, acme.id)] == [k1.id, k2.id]
    assert store.get_key(db, k2.id).name == "two"
    assert store.get_key(db, "key_nope") is None
    assert store.update_key(db, k2.id, name="renamed").name == "renamed"
    assert store.update_key(db, k2.id).name == "renamed"
    assert store.update_key(db, "key_nope", name="x") is None


def test_load_active_keys(db):
    account = store.create_account(db, "acme")
    k1, p1 = store.create_key(db, account.id, "one")
    k2, _ = store.create_key(db, account.id, "two")
    store.revoke_key(db, k2.id)
    assert store.load_active_keys(db) == [(store.hash_key(p1), k1.id, account.id, "one")]


def test_touch_keys_only_moves_forward(db):
    account = store.create_account(db, "acme")
    key, _ = store.create_key(db, account.id, "one")
    assert store.touch_keys(db, {}) == 0
    assert store.touch_keys(db, {key.id: 10.0, "key_nope": 11.0}) == 1
    assert store.touch_keys(db, {key.id: 5.0}) == 0
    assert store.get_key(db, key.id).last_used_at == 10.0
