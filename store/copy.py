"""`prism store migrate --to postgresql://...`: copy a store into an empty database.

The target gets today's schema (store.db.migrate), then every table is copied in
creation order (a table after those it references) in batches, inside one write
transaction on the target, so a failure leaves it empty. Then the copy is verified:
row counts per table, and per wallet the balance, the held amount and the sum of its
ledger rows must agree on both sides; the money audit (check_invariants) must pass
on the target. A target that already holds rows is refused before anything is written.
"""
from __future__ import annotations

from dataclasses import dataclass

from store.db import StoreError, read_tx, write_tx
from store.ledger import check_invariants
from store.models import MODELS, SchemaVersion
from store.orgs import DEFAULT_ORG
from store.pg import is_postgres

BATCH = 2000

_WALLET_SUMS = """SELECT w.account_id, w.balance_micros, w.held_micros,
 (SELECT COALESCE(SUM(e.amount_micros), 0) FROM ledger_entry e WHERE e.wallet_id = w.id)
 FROM wallet w ORDER BY w.account_id"""


class TargetNotEmpty(StoreError):
    pass


class CopyMismatch(StoreError):
    pass


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]          # table -> rows copied
    wallets: int
    ledger_total_micros: int      # sum of every ledger row, on both sides


def _tables():
    return [m for m in MODELS if m is not SchemaVersion]


def _counts(db) -> dict[str, int]:
    with read_tx(db):
        return {m._meta.table_name: db.execute_sql(
            f'SELECT COUNT(*) FROM "{m._meta.table_name}"').fetchone()[0] for m in _tables()}


def _wallet_sums(db) -> list[tuple]:
    with read_tx(db):
        return [tuple(r) for r in db.execute_sql(_WALLET_SUMS).fetchall()]


def _copy_table(src, dst, model) -> int:
    table = model._meta.table_name
    columns = [f.column_name for f in model._meta.sorted_fields]
    names = ", ".join(f'"{c}"' for c in columns)
    insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
    if is_postgres(dst):
        insert = insert.replace("?", "%s")
    order = ", ".join(f'"{f.column_name}"' for f in model._meta.get_primary_keys()) or "1"
    copied = 0
    cursor = src.execute_sql(f'SELECT {names} FROM "{table}" ORDER BY {order}')
    while rows := cursor.fetchmany(BATCH):
        dst.cursor().executemany(insert, rows)
        copied += len(rows)
    if is_postgres(dst) and model._meta.auto_increment:
        # Ids were copied as they were; the sequence must continue after them.
        pk = model._meta.primary_key.column_name
        dst.execute_sql(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{pk}'), "
                        f'COALESCE((SELECT MAX("{pk}") FROM "{table}"), 0) + 1, false)')
    return copied


def _only_default_org(db) -> bool:
    with read_tx(db):
        row = db.execute_sql("SELECT id FROM organization").fetchone()
    return row is not None and row[0] == DEFAULT_ORG


def copy_store(src, dst) -> CopyReport:
    """Copy every row of `src` into the empty `dst` (both opened with open_database),
    then verify; raises TargetNotEmpty or CopyMismatch."""
    busy = {t: n for t, n in _counts(dst).items() if n}
    if busy.get("organization") == 1 and _only_default_org(dst):
        del busy["organization"]     # what opening any store makes (store.orgs)
    if busy:
        raise TargetNotEmpty("the target store is not empty: " +
                             ", ".join(f"{t} has {n} rows" for t, n in sorted(busy.items())))
    rows: dict[str, int] = {}
    with read_tx(src), write_tx(dst):
        dst.execute_sql("DELETE FROM organization WHERE id = ?", (DEFAULT_ORG,))
        for model in _tables():
            rows[model._meta.table_name] = _copy_table(src, dst, model)
    source, target = _counts(src), _counts(dst)
    if source != target or any(rows[t] != source[t] for t in rows):
        raise CopyMismatch(f"row counts differ: source {source}, target {target}")
    sums_src, sums_dst = _wallet_sums(src), _wallet_sums(dst)
    if sums_src != sums_dst:
        bad = [a for a, b in zip(sums_src, sums_dst) if a != b][:5]
        raise CopyMismatch(f"wallet figures differ after the copy, e.g. {bad}")
    problems = check_invariants(dst)
    if problems:
        raise CopyMismatch("the copied books fail the money audit: " + "; ".join(problems[:5]))
    return CopyReport(rows, len(sums_dst), sum(r[3] for r in sums_dst))
