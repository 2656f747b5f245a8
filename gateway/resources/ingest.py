"""Background ingestion: parse, chunk, embed and index each file added to a vector store.

Work is driven by the store, not by memory: every `in_progress` vector-store file is
picked up at start-up as well as when it is added, so a restart resumes ingestion: the
chunks an earlier attempt embedded (each batch stored as soon as it was paid for) are
kept, and embedding goes on after them, so no batch is billed twice. A file cancelled or
removed meanwhile stops before its next batch. Parsing, chunking and index writes run
on worker threads and embeddings are awaited, so the event loop never blocks; a
limiter bounds how many files are ingested at once.
"""
from __future__ import annotations

import json
import logging
import math

import trio

import store.vector_stores as svs
from gateway import errors, tokenizer
from gateway.resources.chunking import Chunking, chunk_text
from gateway.resources.embedder import INGEST_ROUTE, Embed
from gateway.resources.parse import UnreadableFile, extract_text

log = logging.getLogger("prism.resources")

EMBED_BATCH = 128


def _error_code(exc: errors.PrismError) -> str:
    if isinstance(exc, (errors.RateLimited, errors.QuotaExceeded)):
        return "rate_limit_exceeded"
    if isinstance(exc, errors.ClientError):
        return exc.type_name        # insufficient_balance, model_not_found, ...
    return "server_error"


class Ingestor:
    def __init__(self, writer, files, index, embed: Embed, *, concurrency: int = 2) -> None:
        self.writer = writer
        self.files = files
        self.index = index
        self.embed = embed
        self.limiter = trio.CapacityLimiter(concurrency)
        self._send, self._receive = trio.open_memory_channel(math.inf)
        self._busy: set[tuple[str, str]] = set()
        self._again: set[tuple[str, str]] = set()

    def submit(self, store_id: str, file_id: str) -> None:
        self._send.send_nowait((store_id, file_id))

    async def run(self, takeover: bool = True, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Ingest what is submitted until cancelled; with `takeover`, first resume the
        files a previous process left pending."""
        async with trio.open_nursery() as nursery:
            for row in await self.writer.call(svs.pending_files) if takeover else ():
                self.submit(row.vector_store_id, row.file_id)
            task_status.started()
            async for key in self._receive:
                if key in self._busy:
                    self._again.add(key)    # re-added while ingesting: once more after
                    continue
                self._busy.add(key)
                await self.limiter.acquire_on_behalf_of(key)
                nursery.start_soon(self._one, key)

    async def _one(self, key: tuple[str, str]) -> None:
        try:
            await self.ingest(*key)
        except Exception:
            # One bad file must not stop the gateway or the other files: it fails alone.
            log.exception("ingesting %s into %s failed", key[1], key[0])
            with trio.CancelScope(shield=True):
                await self._fail(*key, "server_error", "ingestion failed; see the gateway log")
        finally:
            self._busy.discard(key)
            self.limiter.release_on_behalf_of(key)
            if key in self._again:
                self._again.discard(key)
                self.submit(*key)

    async def _fail(self, store_id: str, file_id: str, code: str, message: str) -> None:
        await self.writer.call(svs.finish_file, store_id, file_id, "failed",
                               error={"code": code, "message": message})

    async def _still_wanted(self, store_id: str, file_id: str) -> bool:
        row = await self.writer.call(svs.get_store_file, store_id, file_id, None)
        return row is not None and row.status == "in_progress"

    async def ingest(self, store_id: str, file_id: str) -> None:
        row = await self.writer.call(svs.get_store_file, store_id, file_id, None)
        vs = None if row is None else await self.writer.call(svs.get_store, store_id, row.account_id)
        if row is None or row.status != "in_progress" or vs is None:
            return
        try:
            stored, data = await self.files.read_bytes(row.account_id, file_id)
        except (errors.NotFound, OSError):
            return await self._fail(store_id, file_id, "invalid_file", "the file no longer exists")
        try:
            text = await trio.to_thread.run_sync(extract_text, stored.filename, data,
                                                abandon_on_cancel=True)
        except UnreadableFile as exc:
            return await self._fail(store_id, file_id, "unsupported_file", str(exc))
        del data
        cfg = json.loads(row.chunking)["static"]
        chunking = Chunking(cfg["max_chunk_size_tokens"], cfg["chunk_overlap_tokens"])
        # Pure work: on shutdown it is abandoned, and redone after the restart.
        chunks = await trio.to_thread.run_sync(chunk_text, text, chunking, tokenizer.encoding(),
                                               abandon_on_cancel=True)
        # Chunks embedded (and paid for) by an attempt a restart cut short are kept:
        # resume after the ones that still match.
        have = await trio.to_thread.run_sync(self.index.file_chunks, store_id, file_id)
        start = 0
        while start < min(len(have), len(chunks)) and have[start] == chunks[start]:
            start += 1
        del have
        try:
            # One billed embeddings request per batch, on the store owner's account.
            for i in range(start, len(chunks), EMBED_BATCH):
                if i > start and not await self._still_wanted(store_id, file_id):
                    await trio.to_thread.run_sync(self.index.delete_file, store_id, file_id)
                    return
                batch = chunks[i:i + EMBED_BATCH]
                vectors = await self.embed(row.account_id, vs.embedding_model, batch, INGEST_ROUTE)
                with trio.CancelScope(shield=True):     # paid for: kept even on shutdown
                    await trio.to_thread.run_sync(self.index.put_chunks, store_id, file_id, i,
                                                  batch, vectors)
        except errors.PrismError as exc:
            # An account that cannot pay (or a model that cannot embed) fails this file,
            # saying why; what already ran was billed by its own requests.
            return await self._fail(store_id, file_id, _error_code(exc),
                                    f"embedding with {vs.embedding_model!r} failed: {exc.message}")
        usage = await trio.to_thread.run_sync(self.index.seal_file, store_id, file_id, len(chunks))
        if not await self.writer.call(svs.finish_file, store_id, file_id, "completed",
                                      usage_bytes=usage):
            # Cancelled or removed meanwhile: its chunks must not stay searchable.
            await trio.to_thread.run_sync(self.index.delete_file, store_id, file_id)
        log.info("ingested %s into %s: %d chunks", file_id, store_id, len(chunks))

