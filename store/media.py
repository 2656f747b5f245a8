"""Video generation jobs: the table and one function per transaction.

A job is pending (queued / in_progress) until it reaches an end state (completed,
failed, cancelled) exactly once: `finish_video_job` is a guarded UPDATE, so the poller
and a cancelling client cannot both win. `billed` records that the job's money is
done (its hold settled or voided); a job with an end state and billed = 0 is one the
gateway must still close (after a crash between the two writes).
"""
from __future__ import annotations

import time
from typing import Any

import peewee as pw

from store.models import Hold, QuotaHold, _Base


# store.models imports this module (to list VideoJob in MODELS) before store.db has
# finished loading, so the transaction helpers are looked up when first used.
def write_tx(db):
    from store.db import write_tx as tx
    return tx(db)


def read_tx(db):
    from store.db import read_tx as tx
    return tx(db)

PENDING = ("queued", "in_progress")
ENDED = ("completed", "failed", "cancelled")


class VideoJob(_Base):
    id = pw.CharField(primary_key=True)              # 'video_...' (ours, not upstream's)
    account_id = pw.CharField(index=True)
    key_id = pw.CharField(null=True)
    request_id = pw.CharField()
    model = pw.CharField()
    provider = pw.CharField()
    upstream_model = pw.CharField()
    upstream_id = pw.CharField(null=True)
    status = pw.CharField(default="queued")
    progress = pw.IntegerField(default=0)
    prompt = pw.TextField()
    params = pw.TextField(default="{}")              # JSON: seconds, size, ...
    price_micros = pw.BigIntegerField()
    hold_id = pw.CharField()
    hold_generation = pw.IntegerField(default=0)     # re-holds after a restart
    billed = pw.BooleanField(default=False)
    charged_micros = pw.BigIntegerField(default=0)
    error = pw.TextField(null=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()
    completed_at = pw.FloatField(null=True)

    class Meta:
        table_name = "video_job"
        indexes = ((("status", "billed"), False),)
        constraints = [pw.SQL("CHECK (status IN ('queued','in_progress','completed',"
                              "'failed','cancelled'))"),
                       pw.SQL("CHECK (price_micros >= 0 AND charged_micros >= 0)")]


def insert_video_job(db, **fields: Any) -> VideoJob:
    now = time.time()
    fields.setdefault("created_at", now)
    fields.setdefault("updated_at", now)
    with write_tx(db):
        VideoJob.insert(**fields).execute(db)
        return VideoJob.select().where(VideoJob.id == fields["id"]).first(db)


def get_video_job(db, job_id: str, account_id: str | None = None) -> VideoJob | None:
    q = VideoJob.select().where(VideoJob.id == job_id)
    if account_id is not None:
        q = q.where(VideoJob.account_id == account_id)
    with read_tx(db):
        return q.first(db)


def list_video_jobs(db, account_id: str, limit: int = 100) -> list[VideoJob]:
    q = (VideoJob.select().where(VideoJob.account_id == account_id)
         .order_by(VideoJob.created_at.desc()).limit(limit))
    with read_tx(db):
        return list(q.execute(db))


def unfinished_video_jobs(db) -> list[VideoJob]:
    """Pending jobs and ended jobs whose money is not yet closed."""
    q = (VideoJob.select().where((VideoJob.status.in_(PENDING)) | (VideoJob.billed == False))  # noqa: E712
         .order_by(VideoJob.created_at))
    with read_tx(db):
        return list(q.execute(db))


def update_video_job(db, job_id: str, *, only_pending: bool = True, **fields: Any) -> bool:
    fields["updated_at"] = time.time()
    q = VideoJob.update(**fields).where(VideoJob.id == job_id)
    if only_pending:
        q = q.where(VideoJob.status.in_(PENDING))
    with write_tx(db):
        return q.execute(db) > 0


def finish_video_job(db, job_id: str, status: str, *, error: str | None = None) -> bool:
    """Move a pending job to an end state; False when it had already ended."""
    if status not in ENDED:
        raise ValueError(f"not an end state: {status!r}")
    now = time.time()
    q = (VideoJob.update(status=status, error=error, updated_at=now,
                         completed_at=now if status == "completed" else None,
                         progress=100 if status == "completed" else VideoJob.progress)
         .where(VideoJob.id == job_id, VideoJob.status.in_(PENDING)))
    with write_tx(db):
        return q.execute(db) > 0


def mark_video_billed(db, job_id: str, charged_micros: int) -> None:
    with write_tx(db):
        (VideoJob.update(billed=True, charged_micros=charged_micros, updated_at=time.time())
         .where(VideoJob.id == job_id).execute(db))


def close_video_hold(db, job_id: str, hold_id: str, cost_micros: int | None, *,
                     log: dict | None, account_id: str | None = None,
                     windows: Any = ()) -> Any:
    """Settle (cost) or void (None) the job's hold and mark the job billed, in one
    transaction: a crash leaves both done or neither."""
    from store import quota
    with write_tx(db):
        closed = quota.close(db, hold_id, cost_micros=cost_micros, log=log,
                             account_id=account_id, windows=windows)
        (VideoJob.update(billed=True, charged_micros=closed.result.charged_micros,
                         updated_at=time.time()).where(VideoJob.id == job_id).execute(db))
    return closed


def hold_state(db, hold_id: str) -> str | None:
    """'open' | 'settled' | 'voided' | 'expired' for a wallet or window hold, None if unknown."""
    with read_tx(db):
        for model in (Hold, QuotaHold):
            row = model.select(model.state).where(model.id == hold_id).first(db)
            if row is not None:
                return row.state
    return None
