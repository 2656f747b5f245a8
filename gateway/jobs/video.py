"""Video generations on the job runner: one runner job per video, with the video's own
id, polling its upstream job until it ends.

The money and the upstream protocol stay where they were (engine.jobs.MediaService:
advance, end, bill, and store.media's guarded writes); the runner adds what the old
poller lacked: a lease, so a video is polled by exactly one process and picked up
again when its process dies, and the same view and control as every other job.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import trio

import store
import store.jobs as sj

log = logging.getLogger("prism.jobs.video")

_STATE = {"completed": "succeeded", "failed": "failed", "cancelled": "cancelled"}


class VideoHandler:
    kind = "video"

    def __init__(self, media: Any, writer: Any, poll_interval: Callable[[], float]) -> None:
        self.media = media
        self.writer = writer
        self.poll_interval = poll_interval

    async def run(self, job: sj.Job, owner: str) -> None:
        while True:
            video = await self.writer.call(store.get_video_job, job.id)
            if video is None:
                await self.writer.call(sj.update_owned, job.id, owner, state="failed",
                                       error="the video job is gone")
                return
            if video.status in store.media.ENDED and video.billed:
                await self.writer.call(sj.update_owned, job.id, owner,
                                       state=_STATE[video.status], error=video.error,
                                       cost_micros=video.charged_micros)
                return
            await self.media.advance(video)
            video = await self.writer.call(store.get_video_job, job.id)
            if video is not None and video.status in store.media.ENDED and video.billed:
                continue   # record the end above, without waiting a poll interval
            await trio.sleep(self.poll_interval())

    async def cancelled(self, job: sj.Job, owner: str) -> None:
        # The operator cancelled it (the dashboard): end it as a client cancel would.
        await self.media.end(job.id, "cancelled", "cancelled by the operator")
        video = await self.writer.call(store.get_video_job, job.id)
        await self.writer.call(sj.update_owned, job.id, owner, state="cancelled",
                               cost_micros=video.charged_micros if video else 0)
