"""Objects a customer creates and Prism keeps: files, vector stores, assistants.

`Resources` is built once by server.py with the collaborators it uses and runs its
background work (expiry sweeps, ingestion, assistant runs) in the gateway's nursery.
"""
from __future__ import annotations

import logging

import trio

from gateway.resources.blobs import BlobDir
from gateway.resources.files import Files

log = logging.getLogger("prism.resources")


class Resources:
    def __init__(self, config, writer) -> None:
        rc = config.resources
        self.config = rc
        self.blobs = BlobDir(config.resolve_path(rc.blob_dir))
        self.files = Files(writer, self.blobs, max_file_bytes=rc.max_file_bytes,
                           account_cap=rc.storage_bytes_per_account)

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.blobs.ensure)
        await trio.to_thread.run_sync(self.blobs.clear_staging)
        task_status.started()
        while True:
            await self.files.sweep()
            await trio.sleep(self.config.sweep_interval)
