"""Connection setup, schema versioning and the transaction helpers."""
import peewee as pw
import pytest

import store
from store import db as store_db


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "prism.db")


@pytest.fixture
def db(path):
    database = store.open_database(path)
    yield database
    database.close()


def pragma(db, name):
    return db.execute_sql(f"PRAGMA {name}").fetchone()[0]


def test_pragmas_are_set_on_the_connection(db):
    assert pragma(db, "journal_mode") == "wal"
    assert pragma(db, "synchronous") == 1  # NORMAL
    assert pragma(db, "busy_timeout") == 5000
    assert pragma(db, "foreign_keys") == 1


def test_every_model_has_a_table(db):
    for model in store.MODELS:
        assert db.table_exists(model._meta.table_name)


def test_schema_version_is_stamped_once(db, path):
    assert store.schema_version(db) == store.SCHEMA_VERSION == 1
    again = store.open_database(path)
    try:
        assert store.SchemaVersion.select().count(again) == 1
    finally:
        again.close()


def test_migrate_is_a_noop_at_the_current_version(db):
    before = db.execute_sql("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    store.migrate(db)
    after = db.execute_sql("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert before == after
    assert store.schema_version(db) == 1


def test_a_newer_schema_is_refused(db, path):
    db.execute_sql("UPDATE schema_version SET version = 99")
    with pytest.raises(store.SchemaTooNew):
        store.open_database(path)


def test_write_transactions_begin_immediate(db):
    statements = []
    db.connection().set_trace_callback(statements.append)
    store.create_account(db, "acme")
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[-1] == "COMMIT"


def test_ledger_rows_are_append_only(db):
    account = store.create_account(db, "acme")
    store.top_up(db, account.id, 5, "seed")
    with pytest.raises(pw.IntegrityError, match="append-only"):
        db.execute_sql("UPDATE ledger_entry SET amount_micros = 6")
    with pytest.raises(pw.IntegrityError, match="append-only"):
        db.execute_sql("DELETE FROM ledger_entry")


def test_wallet_constraints_refuse_overdraft_even_from_raw_sql(db):
    account = store.create_account(db, "acme")
    with pytest.raises(pw.IntegrityError):
        db.execute_sql("UPDATE wallet SET balance_micros = -1 WHERE account_id = ?",
                       (account.id,))
    with pytest.raises(pw.IntegrityError):
        db.execute_sql("UPDATE wallet SET held_micros = 1 WHERE account_id = ?",
                       (account.id,))


def test_peewee_errors_are_mapped_at_the_transaction_boundary(db):
    with pytest.raises(store.ConstraintViolation):
        with store.write_tx(db):
            db.execute_sql("INSERT INTO schema_version (id, version) VALUES (2, 1)")
    with pytest.raises(store.StoreUnavailable):
        with store.read_tx(db):
            db.execute_sql("SELECT * FROM no_such_table")


def test_a_failed_transaction_leaves_nothing_behind(db):
    account = store.create_account(db, "acme")
    with pytest.raises(RuntimeError):
        with store.write_tx(db):
            store.ledger.post_topup(db, account.id, 10, None, 0.0)
            raise RuntimeError("boom")
    assert store.get_wallet(db, account.id).balance_micros == 0
    assert store.ledger_rows(db, account.id) == []


def test_busy_database_is_reported_as_unavailable(db, path):
    other = pw.SqliteDatabase(path, pragmas=[("busy_timeout", 50)])
    other.connect()
    other.execute_sql("BEGIN IMMEDIATE")
    try:
        db.execute_sql("PRAGMA busy_timeout = 50")
        with pytest.raises(store.StoreUnavailable, match="locked"):
            store.create_account(db, "blocked")
    finally:
        other.execute_sql("ROLLBACK")
        other.close()


def test_store_errors_share_one_base():
    for name in ("StoreUnavailable", "ConstraintViolation", "SchemaTooNew",
                 "WriterClosed", "AccountNotFound", "HoldNotFound", "DuplicateRequest",
                 "InsufficientFunds", "WouldGoNegative"):
        assert issubclass(getattr(store_db, name), store.StoreError)


def test_models_are_bound_for_ad_hoc_queries_but_ops_name_their_db(tmp_path):
    first = store.open_database(str(tmp_path / "one.db"))
    second = store.open_database(str(tmp_path / "two.db"))
    try:
        account = store.create_account(first, "only-in-first")
        # Binding follows the last open; the store's functions ignore it.
        assert store.Account.select().count() == 0
        assert store.get_account(first, account.id).name == "only-in-first"
        assert store.get_account(second, account.id) is None
    finally:
        first.close()
        second.close()
