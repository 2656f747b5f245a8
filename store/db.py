"""Connection setup, schema versioning, transaction helpers and the store's exceptions.

This module is the one boundary where peewee's exceptions become ours: every
transaction runs inside `write_tx` or `read_tx`, which map `peewee.OperationalError`
and `peewee.IntegrityError`. The tree (billing maps these to client errors):

    StoreError
    ├── StoreUnavailable      the database refused or failed (locked past busy_timeout, I/O)
    ├── ConstraintViolation   a schema constraint fired that no caller anticipated
    ├── SchemaTooNew          the file was written by a newer Prism
    ├── WriterClosed          a job was submitted to a Writer that is not running
    ├── AccountNotFound       (account_id)
    ├── HoldNotFound          (hold_id)
    ├── DuplicateRequest      (request_id) a hold or request log already exists for it
    ├── InsufficientFunds     (available_micros, needed_micros) admission refused
    └── WouldGoNegative       (balance_micros, held_micros, amount_micros) adjust refused

Every query in the store names the db it runs on (`query.execute(db)`), because
binding is process-wide: with two databases open at once (tests, the overdraft race,
a CLI beside a server) a bound model means whichever was opened last. open_database
still binds the models to the database it opens, so ad-hoc code (tests, scripts)
may write `Hold.get(...)`; the store's own functions never depend on that binding.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import peewee as pw

from store.models import MODELS, SchemaVersion
from store.pg import APPEND_ONLY_TRIGGERS, PostgresStore, is_postgres, is_postgres_url

SCHEMA_VERSION = 1

# busy_timeout comes first so that the journal_mode switch of a second connection
# waits for the first instead of failing. synchronous=normal under WAL never corrupts;
# a power cut may lose the last commits since the previous checkpoint, which is the
# trade the design accepts for a commit that does not wait on fsync.
PRAGMAS = (
    ("busy_timeout", 5000),
    ("journal_mode", "wal"),
    ("synchronous", "normal"),
    ("foreign_keys", 1),
)

# Ledger rows are the books; the database itself refuses to rewrite them.
_APPEND_ONLY_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS ledger_entry_no_update BEFORE UPDATE ON ledger_entry "
    "BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS ledger_entry_no_delete BEFORE DELETE ON ledger_entry "
    "BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS quota_entry_no_update BEFORE UPDATE ON quota_entry "
    "BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS quota_entry_no_delete BEFORE DELETE ON quota_entry "
    "BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END",
)

# _UPGRADES[n - 1] takes a version-n database to version n + 1, inside migrate's
# transaction. Empty while version 1 is the only version.
_UPGRADES: tuple = ()


class StoreError(Exception):
    """Base of every error the store raises; peewee's own never leave the store."""


class StoreUnavailable(StoreError):
    pass


class ConstraintViolation(StoreError):
    pass


class SchemaTooNew(StoreError):
    pass


class WriterClosed(StoreError):
    pass


class AccountNotFound(StoreError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"no account {account_id!r}")
        self.account_id = account_id


class HoldNotFound(StoreError):
    def __init__(self, hold_id: str) -> None:
        super().__init__(f"no hold {hold_id!r}")
        self.hold_id = hold_id


class DuplicateRequest(StoreError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"request {request_id!r} already has a record")
        self.request_id = request_id


class InsufficientFunds(StoreError):
    def __init__(self, available_micros: int, needed_micros: int) -> None:
        super().__init__(
            f"available {available_micros} micro-USD, needed {needed_micros}")
        self.available_micros = available_micros
        self.needed_micros = needed_micros


class WouldGoNegative(StoreError):
    """An adjustment would leave available (balance minus open holds) below zero.

    Available, not just balance, is the bound: money already promised to in-flight
    requests cannot be clawed back, and available >= 0 implies balance >= 0.
    """

    def __init__(self, balance_micros: int, held_micros: int, amount_micros: int) -> None:
        super().__init__(
            f"adjusting by {amount_micros} would leave available "
            f"{balance_micros - held_micros + amount_micros} micro-USD "
            f"(balance {balance_micros}, held {held_micros})")
        self.balance_micros = balance_micros
        self.held_micros = held_micros
        self.amount_micros = amount_micros


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except pw.IntegrityError as exc:
        raise ConstraintViolation(str(exc)) from exc
    except pw.OperationalError as exc:
        raise StoreUnavailable(str(exc)) from exc


@contextmanager
def write_tx(db: pw.SqliteDatabase) -> Iterator[None]:
    """One write transaction taken with BEGIN IMMEDIATE.

    IMMEDIATE takes the write lock at BEGIN, so everything read inside is already
    what the writes will see; a deferred BEGIN that upgrades later can fail with
    SQLITE_BUSY mid-transaction, where busy_timeout does not help. Nested inside
    another transaction this becomes a savepoint and the outer lock type stands.
    """
    if not is_postgres(db):
        with _mapped_errors(), db.atomic(lock_type="IMMEDIATE"):
            yield
        return
    with _mapped_errors(), db.atomic():
        if db.transaction_depth() == 1:
            db.take_write_lock()
        yield


@contextmanager
def read_tx(db: pw.SqliteDatabase) -> Iterator[None]:
    """A deferred transaction: under WAL, one consistent snapshot for several reads
    (on PostgreSQL, REPEATABLE READ gives the same single snapshot)."""
    if is_postgres(db) and not db.in_transaction():
        with _mapped_errors(), db.atomic(isolation_level="REPEATABLE READ"):
            yield
        return
    with _mapped_errors(), db.atomic():
        yield


def open_database(path: str) -> pw.Database:
    """Open (creating if needed) the store at `path` and bring its schema up to date.

    `path` is a SQLite file (optionally as `sqlite:///file`) or a `postgresql://` URL
    (store.pg); on PostgreSQL, peewee likewise keeps one connection per thread.

    peewee keeps one sqlite3 connection per thread for each database object, so a
    connection never crosses threads (hence no check_same_thread=False): the one made
    here belongs to the calling thread, any other thread that queries gets its own
    with the same pragmas, and `db.close()` closes only the calling thread's. The
    Writer therefore opens and closes on its own thread.
    """
    if is_postgres_url(path):
        db = PostgresStore(path)
    else:
        # RETURNING on both engines: peewee builds a model INSERT for the database
        # the models are bound to, and a store may be used beside one of the other
        # engine (`prism store migrate`, tests), so the two must build alike.
        db = pw.SqliteDatabase(sqlite_path(path), pragmas=list(PRAGMAS),
                               returning_clause=True)
    with _mapped_errors():
        db.connect()
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    db.bind(MODELS)
    return db


def sqlite_path(target: str) -> str:
    """The file of a `sqlite:///file` URL (a plain path is returned as it is)."""
    return target[len("sqlite:///"):] if target.startswith("sqlite:///") else target


def schema_version(db: pw.SqliteDatabase) -> int | None:
    """The version recorded in the file, or None for a file with no schema yet."""
    if not db.table_exists(SchemaVersion._meta.table_name):
        return None
    return (SchemaVersion.select(SchemaVersion.version)
            .where(SchemaVersion.id == 1).scalar(db))


def _add_missing_columns(db: pw.SqliteDatabase, model) -> None:
    """Add the nullable columns a table gained since the file was written.

    create_all(safe=True) creates missing tables and indexes but never alters an
    existing table; a new nullable column needs no data migration, so it is added
    here rather than by a numbered upgrade (which concurrent changes would fight over).
    Anything else (a NOT NULL column, a changed type) still needs an _UPGRADES step."""
    table = model._meta.table_name
    present = {c.name for c in db.get_columns(table)}
    for f in model._meta.sorted_fields:
        if f.column_name not in present and f.null:
            ctx = db.get_sql_context()
            column, params = ctx.sql(f.ddl(ctx)).query()
            db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN {column}', params)


def migrate(db: pw.SqliteDatabase) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction; a no-op when current.

    Missing tables are created at today's shape first (a fresh file is then simply
    stamped), after which each _UPGRADES step runs for files written by older code.
    A file from newer code is refused before anything is touched.
    """
    with write_tx(db):
        found = schema_version(db)
        if found is not None and found > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"database schema is version {found}; this Prism knows {SCHEMA_VERSION}")
        for model in MODELS:
            pw.SchemaManager(model, db).create_all(safe=True)
            _add_missing_columns(db, model)
        for statement in (APPEND_ONLY_TRIGGERS if is_postgres(db) else _APPEND_ONLY_TRIGGERS):
            db.execute_sql(statement)
        from store.orgs import ensure_default_org   # accounts from before orgs
        ensure_default_org(db)
        if found is None:
            SchemaVersion.insert(id=1, version=SCHEMA_VERSION).execute(db)
            return
        for version in range(found, SCHEMA_VERSION):
            _UPGRADES[version - 1](db)
        if found != SCHEMA_VERSION:
            (SchemaVersion.update(version=SCHEMA_VERSION)
             .where(SchemaVersion.id == 1).execute(db))
