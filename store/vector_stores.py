"""Vector stores, the files in them and file batches: tables and transactions.

A vector-store file is `in_progress` from the moment it is added until ingestion moves
it, once, to `completed` or `failed` (a guarded UPDATE), or a batch cancel moves it to
`cancelled`; the ingestion worker re-reads every `in_progress` row at start-up, which is
how ingestion survives a restart. The chunks themselves live in store/vector_index.py.
"""
from __future__ import annotations

import json
import time
from typing import Any

import peewee as pw

from store.lazy_tx import read_tx, write_tx
from store.models import _Base
from store.paging import page

FILE_STATES = ("in_progress", "completed", "failed", "cancelled")




class VectorStore(_Base):
    id = pw.CharField(primary_key=True)             # 'vs_...'
    account_id = pw.CharField(index=True)
    name = pw.CharField(null=True)
    embedding_model = pw.CharField()
    chunking = pw.TextField()                       # JSON chunking_strategy object
    metadata = pw.TextField(default="{}")
    expires_after = pw.TextField(null=True)         # JSON {"anchor", "days"}
    created_at = pw.FloatField()
    last_active_at = pw.FloatField()

    class Meta:
        table_name = "vector_store"


class VectorStoreFile(_Base):
    vector_store_id = pw.CharField()
    file_id = pw.CharField()
    account_id = pw.CharField(index=True)
    batch_id = pw.CharField(null=True, index=True)
    status = pw.CharField(default="in_progress", index=True)
    last_error = pw.TextField(null=True)            # JSON {"code", "message"}
    attributes = pw.TextField(default="{}")
    chunking = pw.TextField()
    usage_bytes = pw.BigIntegerField(default=0)
    created_at = pw.FloatField()

    class Meta:
        table_name = "vector_store_file"
        indexes = ((("vector_store_id", "file_id"), True),)
        constraints = [pw.SQL("CHECK (status IN ('in_progress','completed','failed','cancelled'))")]


class FileBatch(_Base):
    id = pw.CharField(primary_key=True)             # 'vsfb_...'
    vector_store_id = pw.CharField(index=True)
    account_id = pw.CharField()
    cancelled = pw.BooleanField(default=False)
    created_at = pw.FloatField()

    class Meta:
        table_name = "vector_store_file_batch"


TABLES = (VectorStore, VectorStoreFile, FileBatch)


def create_store(db, row: dict, files: list[dict]) -> VectorStore:
    with write_tx(db):
        VectorStore.insert(**row).execute(db)
        if files:
            VectorStoreFile.insert_many(files).execute(db)
        return VectorStore.select().where(VectorStore.id == row["id"]).first(db)


def get_store(db, store_id: str, account_id: str) -> VectorStore | None:
    with read_tx(db):
        return VectorStore.select().where(VectorStore.id == store_id,
                                          VectorStore.account_id == account_id).first(db)


def list_stores(db, account_id: str, *, limit: int, after: str | None, order: str):
    with read_tx(db):
        q = VectorStore.select().where(VectorStore.account_id == account_id)
        return page(db, q, VectorStore, after=after, order=order, limit=limit)


def update_store(db, store_id: str, account_id: str, **fields: Any) -> VectorStore | None:
    with write_tx(db):
        (VectorStore.update(**fields)
         .where(VectorStore.id == store_id, VectorStore.account_id == account_id).execute(db))
        return VectorStore.select().where(VectorStore.id == store_id,
                                          VectorStore.account_id == account_id).first(db)


def delete_store(db, store_id: str, account_id: str) -> bool:
    with write_tx(db):
        n = (VectorStore.delete()
             .where(VectorStore.id == store_id, VectorStore.account_id == account_id).execute(db))
        if n:
            VectorStoreFile.delete().where(VectorStoreFile.vector_store_id == store_id).execute(db)
            FileBatch.delete().where(FileBatch.vector_store_id == store_id).execute(db)
        return n > 0


def counts(db, store_id: str, batch_id: str | None = None) -> dict[str, int]:
    q = (VectorStoreFile.select(VectorStoreFile.status, pw.fn.COUNT(VectorStoreFile.file_id))
         .where(VectorStoreFile.vector_store_id == store_id))
    if batch_id is not None:
        q = q.where(VectorStoreFile.batch_id == batch_id)
    with read_tx(db):
        got = dict(q.group_by(VectorStoreFile.status).tuples().execute(db))
    out = {s: got.get(s, 0) for s in FILE_STATES}
    out["total"] = sum(out.values())
    return out


def store_usage(db, store_id: str) -> int:
    with read_tx(db):
        return (VectorStoreFile.select(pw.fn.COALESCE(pw.fn.SUM(VectorStoreFile.usage_bytes), 0))
                .where(VectorStoreFile.vector_store_id == store_id).scalar(db)) or 0


def add_files(db, rows: list[dict], batch: dict | None = None) -> list[VectorStoreFile]:
    """Add files (a file already in the store is restarted with its new attributes)."""
    with write_tx(db):
        if batch is not None:
            FileBatch.insert(**batch).execute(db)
        for r in rows:
            (VectorStoreFile.insert(**r)
             .on_conflict(conflict_target=[VectorStoreFile.vector_store_id, VectorStoreFile.file_id],
                          update={VectorStoreFile.status: "in_progress",
                                  VectorStoreFile.last_error: None,
                                  VectorStoreFile.attributes: r["attributes"],
                                  VectorStoreFile.chunking: r["chunking"],
                                  VectorStoreFile.batch_id: r.get("batch_id"),
                                  VectorStoreFile.created_at: r["created_at"]})
             .execute(db))
        return [_file(db, r["vector_store_id"], r["file_id"]) for r in rows]


def _file(db, store_id: str, file_id: str) -> VectorStoreFile | None:
    return VectorStoreFile.select().where(VectorStoreFile.vector_store_id == store_id,
                                          VectorStoreFile.file_id == file_id).first(db)


def get_store_file(db, store_id: str, file_id: str,
                   account_id: str | None) -> VectorStoreFile | None:
    """The row when `account_id` owns it; None as the account means the ingestion
    worker, which acts for whoever owns the row."""
    with read_tx(db):
        row = _file(db, store_id, file_id)
    return row if row is not None and account_id in (None, row.account_id) else None


def list_store_files(db, store_id: str, *, status: str | None, batch_id: str | None,
                     limit: int, after: str | None, order: str):
    with read_tx(db):
        q = VectorStoreFile.select().where(VectorStoreFile.vector_store_id == store_id)
        if status:
            q = q.where(VectorStoreFile.status == status)
        if batch_id:
            q = q.where(VectorStoreFile.batch_id == batch_id)
        return page(db, q, VectorStoreFile, after=after, order=order, limit=limit,
                    id_field=VectorStoreFile.file_id)


def delete_store_file(db, store_id: str, file_id: str, account_id: str) -> bool:
    with write_tx(db):
        return (VectorStoreFile.delete()
                .where(VectorStoreFile.vector_store_id == store_id,
                       VectorStoreFile.file_id == file_id,
                       VectorStoreFile.account_id == account_id).execute(db)) > 0


def update_attributes(db, store_id: str, file_id: str, account_id: str, attributes: dict):
    with write_tx(db):
        (VectorStoreFile.update(attributes=json.dumps(attributes))
         .where(VectorStoreFile.vector_store_id == store_id, VectorStoreFile.file_id == file_id,
                VectorStoreFile.account_id == account_id).execute(db))
        return _file(db, store_id, file_id)


def pending_files(db) -> list[VectorStoreFile]:
    with read_tx(db):
        return list(VectorStoreFile.select().where(VectorStoreFile.status == "in_progress")
                    .order_by(VectorStoreFile.created_at).execute(db))


def finish_file(db, store_id: str, file_id: str, status: str, *, usage_bytes: int = 0,
                error: dict | None = None) -> bool:
    """in_progress -> an end state, once; False when it had already left in_progress
    (cancelled, or removed from the store, while it was being ingested)."""
    with write_tx(db):
        return (VectorStoreFile.update(status=status, usage_bytes=usage_bytes,
                                       last_error=json.dumps(error) if error else None)
                .where(VectorStoreFile.vector_store_id == store_id,
                       VectorStoreFile.file_id == file_id,
                       VectorStoreFile.status == "in_progress").execute(db)) > 0


def get_batch(db, batch_id: str, store_id: str, account_id: str) -> FileBatch | None:
    with read_tx(db):
        return FileBatch.select().where(FileBatch.id == batch_id,
                                        FileBatch.vector_store_id == store_id,
                                        FileBatch.account_id == account_id).first(db)


def cancel_batch(db, batch_id: str) -> None:
    with write_tx(db):
        FileBatch.update(cancelled=True).where(FileBatch.id == batch_id).execute(db)
        (VectorStoreFile.update(status="cancelled")
         .where(VectorStoreFile.batch_id == batch_id,
                VectorStoreFile.status == "in_progress").execute(db))


def searchable_files(db, store_ids: list[str], account_id: str) -> list[VectorStoreFile]:
    """The completed files of the caller's stores (with their attributes), for search."""
    with write_tx(db):
        (VectorStore.update(last_active_at=time.time())
         .where(VectorStore.id.in_(store_ids), VectorStore.account_id == account_id).execute(db))
        return list(VectorStoreFile.select()
                    .where(VectorStoreFile.vector_store_id.in_(store_ids),
                           VectorStoreFile.account_id == account_id,
                           VectorStoreFile.status == "completed").execute(db))
