"""Objects a customer creates and Prism keeps: files, vector stores, assistants.

`Resources` is built once by server.py with the collaborators it uses and runs its
background work (expiry sweeps, ingestion, assistant runs) in the gateway's nursery.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

import trio

from gateway.resources.assistants import Assistants
from gateway.resources.blobs import BlobDir
from gateway.resources.chat import Chat
from gateway.resources.embedder import Embed
from gateway.resources.files import Files
from gateway.resources.ingest import Ingestor
from gateway.resources.runs import Runs
from gateway.resources.vector_stores import VectorStores
from store.vector_index import VectorIndex

log = logging.getLogger("prism.resources")


async def _alone() -> bool:
    return True


class Resources:
    def __init__(self, config, writer, chat: Chat, embed: Embed, *,
                 sole: Callable[[], Awaitable[bool]] = _alone) -> None:
        rc = config.resources
        # Whether no other live process shares the store. Only then is unfinished work
        # (files being ingested, runs in progress) an orphan of a previous run for this
        # process to resume or fail: a live neighbour's work is in flight, and taking it
        # over would bill its embeddings twice and fail its runs under it.
        self.sole = sole
        self.config = rc
        self.writer = writer
        self.chat = chat
        self.blobs = BlobDir(config.resolve_path(rc.blob_dir))
        if not any(rc.embedding_model in (m.id, *m.aliases) and "embeddings" in m.capabilities
                   for m in config.models):
            # Not fatal (the gateway serves everything else), but every file added to a
            # vector store will fail with model_not_found until the config names one.
            log.warning("[resources] embedding_model %r is not a model with the embeddings "
                        "capability: vector stores cannot embed", rc.embedding_model)
        self.index = VectorIndex(config.resolve_path(rc.index_dir))
        self.files = Files(writer, self.blobs, self.index, max_file_bytes=rc.max_file_bytes,
                           account_cap=rc.storage_bytes_per_account)
        self.ingestor = Ingestor(writer, self.files, self.index, embed)
        self.vector_stores = VectorStores(writer, self.files, self.index, self.ingestor, embed,
                                          rc.embedding_model)
        self.assistants = Assistants(writer, self.vector_stores)
        self.runs = Runs(writer, self.assistants, self.vector_stores, self.files, chat,
                         max_steps=rc.run_max_steps)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.blobs.ensure)
        await trio.to_thread.run_sync(self.blobs.clear_staging)
        takeover = await self.sole()
        if not takeover:
            log.info("other processes share the store: their unfinished ingestion and runs "
                     "are left to them")
        async with trio.open_nursery() as nursery:
            await nursery.start(self.ingestor.run, takeover)
            await nursery.start(self.runs.run, takeover)
            task_status.started()
            while True:
                await self.files.sweep()
                await trio.sleep(self.config.sweep_interval)
