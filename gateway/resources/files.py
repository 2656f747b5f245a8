"""Files: upload, list, get, content, delete and the expiry sweep, for one account each.

Objects are looked up by id *and* owner, so another account's id answers 404 exactly as
an unknown id does: ids cannot be probed.
"""
from __future__ import annotations

import logging
import os
import secrets
import time
from typing import Any, AsyncIterator

import trio

import store.files as sf
from gateway import errors
from gateway.resources.blobs import BlobDir, receive_upload
from store.vector_index import VectorIndex

log = logging.getLogger("prism.resources")

PURPOSES = ("assistants", "batch", "user_data", "vision", "evals", "fine-tune")
_MIN_EXPIRY, _MAX_EXPIRY = 3600, 30 * 86400


def file_object(row: sf.StoredFile) -> dict[str, Any]:
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": int(row.created_at),
            "expires_at": int(row.expires_at) if row.expires_at else None,
            "filename": row.filename, "purpose": row.purpose, "status": "processed",
            "status_details": None}


def _expiry(fields: dict[str, str], now: float) -> float | None:
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor not in (None, "created_at"):
        raise errors.InvalidRequest("expires_after.anchor must be 'created_at'",
                                    field="expires_after.anchor")
    try:
        n = int(seconds or "")
    except ValueError:
        raise errors.InvalidRequest("expires_after.seconds must be an integer",
                                    field="expires_after.seconds") from None
    if not _MIN_EXPIRY <= n <= _MAX_EXPIRY:
        raise errors.InvalidRequest(f"expires_after.seconds must be between {_MIN_EXPIRY} and "
                                    f"{_MAX_EXPIRY}", field="expires_after.seconds")
    return now + n


class Files:
    def __init__(self, writer, blobs: BlobDir, index: VectorIndex, *, max_file_bytes: int,
                 account_cap: int) -> None:
        self.writer = writer
        self.blobs = blobs
        self.index = index          # a deleted file's chunks leave every vector store
        self.max_file_bytes = max_file_bytes
        self.account_cap = account_cap

    async def upload(self, account_id: str, chunks: AsyncIterator[bytes], boundary: bytes) -> sf.StoredFile:
        used = await self.writer.call(sf.account_bytes, account_id)
        if used >= self.account_cap:
            raise _over_cap(used, self.account_cap)
        up = None
        try:
            up = await receive_upload(chunks, boundary, self.blobs,
                                      min(self.max_file_bytes, self.account_cap - used))
        except errors.BodyTooLarge as exc:
            if used and self.account_cap - used < self.max_file_bytes:
                raise _over_cap(used, self.account_cap) from exc
            raise
        try:
            if up.staged is None:
                raise errors.InvalidRequest("Missing the `file` part", field="file")
            purpose = up.fields.get("purpose")
            if purpose not in PURPOSES:
                raise errors.InvalidRequest(f"purpose must be one of {', '.join(PURPOSES)}",
                                            field="purpose")
            now = time.time()
            row = {"id": "file-" + secrets.token_hex(12), "account_id": account_id,
                   "filename": up.filename, "purpose": purpose, "bytes": up.size,
                   "sha256": up.sha256, "created_at": now, "expires_at": _expiry(up.fields, now)}
            staged, up.staged = up.staged, None
            with trio.CancelScope(shield=True):
                result = await self.writer.call(sf.insert_file, row, cap=self.account_cap,
                                                staged=staged, blob_path=self.blobs.path_of(up.sha256))
        finally:
            if up.staged is not None and os.path.exists(up.staged):
                os.unlink(up.staged)
        if isinstance(result, sf.OverCap):
            raise _over_cap(result.used, result.cap)
        return result

    async def get(self, account_id: str, file_id: str) -> sf.StoredFile:
        row = await self.writer.call(sf.get_file, file_id, account_id)
        if row is None:
            raise errors.NotFound(f"No file with id '{file_id}'")
        return row

    async def listing(self, account_id: str, *, purpose: str | None, limit: int,
                      after: str | None, order: str) -> tuple[list[sf.StoredFile], bool]:
        return await self.writer.call(sf.list_files, account_id, purpose=purpose, limit=limit,
                                      after=after, order=order)

    async def content(self, account_id: str, file_id: str) -> tuple[sf.StoredFile, str]:
        row = await self.get(account_id, file_id)
        return row, self.blobs.path_of(row.sha256)

    async def read_bytes(self, account_id: str, file_id: str) -> tuple[sf.StoredFile, bytes]:
        row, path = await self.content(account_id, file_id)
        async with await trio.open_file(path, "rb") as f:
            return row, await f.read()

    async def delete(self, account_id: str, file_id: str) -> None:
        stores = await self.writer.call(sf.delete_file, file_id, account_id, self.blobs.path_of)
        if stores is None:
            raise errors.NotFound(f"No file with id '{file_id}'")
        with trio.CancelScope(shield=True):
            await self._drop_chunks({file_id: stores})

    async def _drop_chunks(self, held: dict[str, list[str]]) -> None:
        """The store rows are gone already, so search no longer sees these chunks (it
        reads only files the store lists); this frees their space in the index."""
        for file_id, stores in held.items():
            for store_id in stores:
                await trio.to_thread.run_sync(self.index.delete_file, store_id, file_id)

    async def sweep(self) -> None:
        gone = await self.writer.call(sf.sweep_expired_files, self.blobs.path_of)
        if gone:
            log.info("swept %d expired file(s)", len(gone))
            with trio.CancelScope(shield=True):
                await self._drop_chunks(gone)


def _over_cap(used: int, cap: int) -> errors.PrismError:
    return errors.PermissionDenied(
        f"Account storage limit reached: {used} of {cap} bytes in use "
        "(resources.storage_bytes_per_account); delete files to upload more",
        code="storage_limit_exceeded")


async def stream_file(path: str, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    async with await trio.open_file(path, "rb") as f:
        while True:
            data = await f.read(chunk)
            if not data:
                return
            yield data
