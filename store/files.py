"""Uploaded files (/v1/files): the metadata table and one function per transaction.

The bytes live outside the database, in a blob directory beside it, one file per
distinct content named by its SHA-256 (see gateway/resources/blobs.py). Rows here say
who owns which content under which name. Two rules make that safe with one writer:
- a blob is moved into place and its row inserted in the same writer job, and a blob is
  unlinked only in the job that deleted its last row, so no upload can lose its bytes
  to a concurrent delete of another file with the same content;
- the per-account storage cap is checked inside the inserting transaction (a guarded
  write), so two concurrent uploads cannot both slip under it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import peewee as pw

from store.lazy_tx import read_tx, write_tx
from store.models import _Base




class StoredFile(_Base):
    id = pw.CharField(primary_key=True)            # 'file-...'
    account_id = pw.CharField(index=True)
    filename = pw.CharField()
    purpose = pw.CharField()
    bytes = pw.BigIntegerField()
    sha256 = pw.CharField(index=True)
    created_at = pw.FloatField()
    expires_at = pw.FloatField(null=True, index=True)

    class Meta:
        table_name = "stored_file"
        constraints = [pw.SQL("CHECK (bytes >= 0)")]


@dataclass(frozen=True)
class OverCap:
    """The insert was refused: the account would exceed its storage cap."""
    used: int
    cap: int


def account_bytes(db, account_id: str) -> int:
    with read_tx(db):
        return (StoredFile.select(pw.fn.COALESCE(pw.fn.SUM(StoredFile.bytes), 0))
                .where(StoredFile.account_id == account_id).scalar(db)) or 0


def insert_file(db, row: dict, *, cap: int, staged: str, blob_path: str) -> StoredFile | OverCap:
    """Put the staged upload in place under its digest and record it, unless the account
    would then hold more than `cap` bytes (the staged file is removed either way)."""
    with write_tx(db):
        used = (StoredFile.select(pw.fn.COALESCE(pw.fn.SUM(StoredFile.bytes), 0))
                .where(StoredFile.account_id == row["account_id"]).scalar(db)) or 0
        if used + row["bytes"] > cap:
            os.unlink(staged)
            return OverCap(used, cap)
        os.makedirs(os.path.dirname(blob_path), exist_ok=True)
        if os.path.exists(blob_path):
            os.unlink(staged)      # same content already stored: share it
        else:
            os.replace(staged, blob_path)
        StoredFile.insert(**row).execute(db)
        return StoredFile.select().where(StoredFile.id == row["id"]).first(db)


def get_file(db, file_id: str, account_id: str) -> StoredFile | None:
    with read_tx(db):
        return (StoredFile.select()
                .where(StoredFile.id == file_id, StoredFile.account_id == account_id)
                .first(db))


def list_files(db, account_id: str, *, purpose: str | None, limit: int, after: str | None,
               order: str) -> tuple[list[StoredFile], bool]:
    """One page, newest first by default, and whether more follow."""
    from store.paging import page
    with read_tx(db):
        q = StoredFile.select().where(StoredFile.account_id == account_id)
        if purpose:
            q = q.where(StoredFile.purpose == purpose)
        return page(db, q, StoredFile, after=after, order=order, limit=limit)


def _drop(db, row: StoredFile, blob_path: str) -> list[str]:
    """Delete the row, its place in every vector store (so file_counts and usage_bytes
    forget it at once and search stops returning it), and the blob when no other row
    shares its content. The ids of the vector stores whose index still holds its chunks."""
    from store.vector_stores import VectorStoreFile as VSF
    stores = [s for (s,) in VSF.select(VSF.vector_store_id)
              .where(VSF.file_id == row.id, VSF.account_id == row.account_id).tuples().execute(db)]
    VSF.delete().where(VSF.file_id == row.id, VSF.account_id == row.account_id).execute(db)
    StoredFile.delete().where(StoredFile.id == row.id).execute(db)
    still = StoredFile.select().where(StoredFile.sha256 == row.sha256).exists(db)
    if not still and os.path.exists(blob_path):
        os.unlink(blob_path)
    return stores


def delete_file(db, file_id: str, account_id: str, blob_path_of) -> list[str] | None:
    """Delete the owner's file (see _drop); None when there is no such file of theirs,
    else the vector stores whose chunks of it the caller must drop from the index."""
    with write_tx(db):
        row = (StoredFile.select()
               .where(StoredFile.id == file_id, StoredFile.account_id == account_id).first(db))
        if row is None:
            return None
        return _drop(db, row, blob_path_of(row.sha256))


def sweep_expired_files(db, blob_path_of, now: float | None = None) -> dict[str, list[str]]:
    """Delete every file past its expiry: {file id: the vector stores that held it}."""
    now = time.time() if now is None else now
    with write_tx(db):
        rows = list(StoredFile.select().where(StoredFile.expires_at.is_null(False),
                                              StoredFile.expires_at <= now).execute(db))
        return {row.id: _drop(db, row, blob_path_of(row.sha256)) for row in rows}


def filenames(db, file_ids: list[str]) -> dict[str, str]:
    with read_tx(db):
        return dict(StoredFile.select(StoredFile.id, StoredFile.filename)
                    .where(StoredFile.id.in_(file_ids)).tuples().execute(db))
