"""The store on PostgreSQL: one peewee database class that speaks the store's SQL.

The store's hot statements are written once, in the SQL both engines accept, with
SQLite's `?` placeholders; `PostgresStore.execute_sql` turns those into psycopg's `%s`
at this one boundary (peewee's own queries already use `%s` and pass through). The
rest of the difference is types, fixed per connection so that callers see exactly
what SQLite gives them:

- integers stay integers: SUM over BIGINT is NUMERIC in PostgreSQL, loaded here as int;
- booleans are stored as SMALLINT 0/1 (raw statements bind `bool`, which SQLite
  stores as 0/1 too), so reads agree on both engines;
- FLOAT is DOUBLE PRECISION, since REAL (float4) would round timestamps to minutes;
- INT is BIGINT, because token counts and micro-USD sums outgrow 32 bits.

Serialisation: `store.db.write_tx` takes one transaction-scoped advisory lock on
PostgreSQL, the counterpart of SQLite's BEGIN IMMEDIATE. Every guarded write in the
store was written against that guarantee (the guard is the WHERE of one UPDATE, but
some transactions also read first: idempotency claims, flags, quota windows), so it
carries over unchanged to many processes on many machines.
"""
from __future__ import annotations

import peewee as pw

# Any fixed 64-bit number; every Prism process on the database agrees on it.
WRITE_LOCK_KEY = 0x70726973_6d5f7772   # 'prism_wr'

_APPEND_ONLY_FUNCTION = """CREATE OR REPLACE FUNCTION prism_append_only() RETURNS trigger
 AS $$ BEGIN RAISE EXCEPTION 'ledger rows are append-only'; END $$ LANGUAGE plpgsql"""
APPEND_ONLY_TRIGGERS = (
    _APPEND_ONLY_FUNCTION,
    "CREATE OR REPLACE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE"
    " ON ledger_entry FOR EACH ROW EXECUTE FUNCTION prism_append_only()",
    "CREATE OR REPLACE TRIGGER quota_entry_append_only BEFORE UPDATE OR DELETE"
    " ON quota_entry FOR EACH ROW EXECUTE FUNCTION prism_append_only()",
)


_SQLITE_ONLY_SUFFIX = " WITHOUT ROWID"


def _to_pyformat(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (a literal `%` doubled). The store's SQL
    never puts a `?` inside a string literal, which is what makes this safe."""
    return sql.replace("%", "%%").replace("?", "%s")


def _adapters():
    from psycopg.adapt import Dumper, Loader
    from psycopg.postgres import types

    class BoolAsInt(Dumper):
        oid = types["int2"].oid

        def dump(self, obj: bool) -> bytes:
            return b"1" if obj else b"0"

    class IntegralNumeric(Loader):
        def load(self, data) -> int | float:
            text = bytes(data).decode()
            try:
                return int(text)
            except ValueError:
                return float(text)

    return BoolAsInt, IntegralNumeric


class PostgresStore(pw.PostgresqlDatabase):
    field_types = {**pw.PostgresqlDatabase.field_types,
                   "BOOL": "SMALLINT", "FLOAT": "DOUBLE PRECISION", "INT": "BIGINT",
                   "AUTO": "BIGSERIAL"}

    def __init__(self, url: str, **kwargs) -> None:
        super().__init__(url, prefer_psycopg3=True, **kwargs)
        self._bool_dumper, self._numeric_loader = _adapters()

    def _connect(self):
        conn = super()._connect()
        conn.adapters.register_dumper(bool, self._bool_dumper)
        conn.adapters.register_loader("numeric", self._numeric_loader)
        return conn

    def execute_sql(self, sql, params=None):
        if sql.endswith(_SQLITE_ONLY_SUFFIX):
            # A model's `without_rowid` is a SQLite storage hint; PostgreSQL's heap
            # tables have no rowid to drop.
            sql = sql[:-len(_SQLITE_ONLY_SUFFIX)]
        if "?" in sql:
            sql = _to_pyformat(sql)
        return super().execute_sql(sql, params or None)

    def take_write_lock(self) -> None:
        self.execute_sql("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))


def is_postgres(db) -> bool:
    return isinstance(db, PostgresStore)


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))
