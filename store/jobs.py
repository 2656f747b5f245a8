"""Durable jobs (async, scheduled, batch) and batch lines: the tables and one function
per transaction.

A job's state machine:

    queued --claim--> running --finish--> succeeded | failed | cancelled | expired
       ^                 |
       +---release/retry-+        (a scheduled job with a cron goes back to queued)

A claim is a guarded UPDATE (state queued and due, or running with a lapsed lease),
so two runners, in one process or several, never both hold one job; on PostgreSQL the
candidates are read with FOR UPDATE SKIP LOCKED so concurrent claimers do not queue on
each other. Every later write of a running job is guarded by its lease owner: a runner
that lost its lease changes nothing.

Money: a job (or batch line) settles its hold in the same transaction that records its
result (`settle_with`), guarded by the lease. A crash before that transaction leaves
the hold open (the start-up sweep expires it, charging nothing) and the job re-runs; a
crash after it leaves the job done. So each job or line is charged exactly once.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterable

import peewee as pw

from store.lazy_tx import read_tx, write_tx
from store.models import _Base, _one_of

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
ENDED = ("succeeded", "failed", "cancelled", "expired")
KINDS = ("async", "scheduled", "batch", "video")


class Job(_Base):
    id = pw.CharField(primary_key=True)
    kind = pw.CharField(index=True)
    account_id = pw.CharField(index=True)
    key_id = pw.CharField(null=True)
    state = pw.CharField(default="queued")
    phase = pw.CharField(null=True)                  # batches: validating, in_progress, ...
    cancel_requested = pw.BooleanField(default=False)
    lease_owner = pw.CharField(null=True)
    lease_expires = pw.FloatField(null=True)
    heartbeat_at = pw.FloatField(null=True)
    attempts = pw.IntegerField(default=0)
    runs = pw.IntegerField(default=0)                # scheduled: runs recorded so far
    not_before = pw.FloatField(default=0.0)
    payload = pw.TextField(default="{}")
    result = pw.TextField(null=True)
    error = pw.TextField(null=True)
    cost_micros = pw.BigIntegerField(default=0)
    settled_request_id = pw.CharField(null=True)
    callback_url = pw.TextField(null=True)
    webhook_state = pw.CharField(null=True)          # pending | delivered | failed
    webhook_attempts = pw.IntegerField(default=0)
    webhook_next_at = pw.FloatField(null=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()
    finished_at = pw.FloatField(null=True)
    expires_at = pw.FloatField(null=True)            # results are swept after this
    # Batches: when the state machine first reached each phase (the batch object's
    # in_progress_at, finalizing_at, cancelling_at; the end phases use finished_at).
    in_progress_at = pw.FloatField(null=True)
    finalizing_at = pw.FloatField(null=True)
    cancelling_at = pw.FloatField(null=True)

    class Meta:
        table_name = "job"
        indexes = ((("state", "not_before"), False),)
        constraints = [_one_of("state", STATES), _one_of("kind", KINDS),
                       pw.SQL("CHECK (cost_micros >= 0)")]

    def data(self) -> dict:
        return json.loads(self.payload)

    def output(self) -> Any:
        return None if self.result is None else json.loads(self.result)


class WebhookSecret(_Base):
    account_id = pw.CharField(primary_key=True)
    secret = pw.CharField()
    created_at = pw.FloatField()

    class Meta:
        table_name = "webhook_secret"


TABLES = (Job, WebhookSecret)   # store.batch_lines holds the lines of batches


class LeaseLost(Exception):
    """The guarded write found the job no longer ours: the transaction rolls back."""


def _is_pg(db) -> bool:
    from store.pg import is_postgres
    return is_postgres(db)


# ---------------------------------------------------------------- jobs

class TooManyJobs(Exception):
    """The account already has its limit of unfinished jobs."""


def insert_job(db, *, limit: int | None = None, **fields: Any) -> Job:
    """Insert a job, unless the account already has ``limit`` unfinished ones (counted
    in the same transaction, so concurrent submissions cannot both slip under it)."""
    now = fields.pop("now", None) or time.time()
    fields.setdefault("created_at", now)
    fields.setdefault("updated_at", now)
    with write_tx(db):
        if limit is not None and (Job.select().where(
                Job.account_id == fields["account_id"],
                Job.state.in_(("queued", "running"))).count(db) >= limit):
            raise TooManyJobs(fields["account_id"])
        Job.insert(**fields).execute(db)
        return Job.select().where(Job.id == fields["id"]).first(db)


def get_job(db, job_id: str, account_id: str | None = None,
            kinds: Iterable[str] | None = None) -> Job | None:
    q = Job.select().where(Job.id == job_id)
    if account_id is not None:
        q = q.where(Job.account_id == account_id)
    if kinds is not None:
        q = q.where(Job.kind.in_(list(kinds)))
    with read_tx(db):
        return q.first(db)


def list_jobs(db, *, kind: str | None, account_id: str | None = None, state: str | None = None,
              phase: str | None = None, limit: int = 20, after: str | None = None) -> tuple[list[Job], bool]:
    """Newest first; ``after`` is the id of the last object of the previous page."""
    q = Job.select()
    if kind is not None:
        q = q.where(Job.kind == kind)
    if account_id is not None:
        q = q.where(Job.account_id == account_id)
    if state is not None:
        q = q.where(Job.state == state)
    if phase is not None:
        q = q.where(Job.phase == phase)
    with read_tx(db):
        if after:
            anchor = Job.select().where(Job.id == after).first(db)
            if anchor is not None:
                q = q.where((Job.created_at < anchor.created_at) |
                            ((Job.created_at == anchor.created_at) & (Job.id < anchor.id)))
        rows = list(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1).execute(db))
    return rows[:limit], len(rows) > limit


def _claimable(now: float, wall: float):
    return (((Job.state == "queued") & (Job.not_before <= now)) |
            ((Job.state == "running") & (Job.lease_expires < wall)))


def claim_jobs(db, owner: str, kind: str, n: int, *, now: float, wall: float, lease_s: float,
               exclude: Iterable[str] = ()) -> list[Job]:
    """Take up to ``n`` jobs of one kind for ``owner``: queued ones due by ``now`` (the
    injectable clock) and running ones whose lease lapsed by ``wall`` (the wall clock),
    never one in ``exclude`` (those this runner is running)."""
    if n <= 0:
        return []
    got = []
    with write_tx(db):
        q = (Job.select(Job.id).where(Job.kind == kind, _claimable(now, wall),
                                      Job.id.not_in(list(exclude) or [""]))
             .order_by(Job.not_before, Job.created_at).limit(n))
        if _is_pg(db):
            q = q.for_update("FOR UPDATE SKIP LOCKED")
        for (job_id,) in q.tuples().execute(db):
            won = (Job.update(state="running", lease_owner=owner, lease_expires=wall + lease_s,
                              heartbeat_at=wall, attempts=Job.attempts + 1, updated_at=wall)
                   .where(Job.id == job_id, Job.kind == kind, _claimable(now, wall)).execute(db))
            if won:
                got.append(job_id)
        return list(Job.select().where(Job.id.in_(got)).execute(db)) if got else []


def heartbeat(db, owner: str, job_ids: list[str], now: float, lease_s: float) -> dict[str, bool]:
    """Extend our leases; {job id: cancel requested} for the ones still ours."""
    if not job_ids:
        return {}
    with write_tx(db):
        (Job.update(lease_expires=now + lease_s, heartbeat_at=now)
         .where(Job.id.in_(job_ids), Job.lease_owner == owner, Job.state == "running").execute(db))
        rows = (Job.select(Job.id, Job.cancel_requested)
                .where(Job.id.in_(job_ids), Job.lease_owner == owner, Job.state == "running")
                .tuples().execute(db))
        return {job_id: bool(c) for job_id, c in rows}


def release_all(db, owner: str, now: float | None = None) -> int:
    """Shutdown: hand our running jobs back to the queue for whoever starts next."""
    now = time.time() if now is None else now
    with write_tx(db):
        return (Job.update(state="queued", lease_owner=None, lease_expires=None, updated_at=now)
                .where(Job.lease_owner == owner, Job.state == "running").execute(db))


_STAMPED = {"in_progress": "in_progress_at", "finalizing": "finalizing_at",
            "cancelling": "cancelling_at"}


def phase_stamp(phase: str | None, now: float) -> dict:
    """The extra field a move to ``phase`` writes: the first time it was reached."""
    column = _STAMPED.get(phase or "")
    if column is None:
        return {}
    field = getattr(Job, column)
    return {column: pw.fn.COALESCE(field, now)}


def _owned(job_id: str, owner: str):
    return (Job.id == job_id) & (Job.lease_owner == owner) & (Job.state == "running")


def update_owned(db, job_id: str, owner: str, **fields: Any) -> bool:
    """A guarded write of a job we hold; False when the lease is no longer ours. A new
    end state clears the lease."""
    fields["updated_at"] = fields.pop("now", None) or time.time()
    if fields.get("state") in ENDED:
        fields.setdefault("finished_at", fields["updated_at"])
    if fields.get("state") in ENDED or fields.get("state") == "queued":
        fields.update(lease_owner=None, lease_expires=None)
    if "phase" in fields:
        fields.update(phase_stamp(fields["phase"], fields["updated_at"]))
    with write_tx(db):
        return Job.update(**fields).where(_owned(job_id, owner)).execute(db) > 0


def settle_with(db, hold_id: str, cost_micros: int | None, *, log: dict | None,
                account_id: str | None, windows: Any, apply: Callable[[Any], bool]) -> Any:
    """Settle (cost) or void (None) a hold and record what it paid for (``apply``, a
    guarded write returning False when the job or line is no longer ours) in one
    transaction. LeaseLost rolls it all back: the caller voids the hold instead."""
    from store import quota
    with write_tx(db):
        if not apply(db):
            raise LeaseLost(hold_id)
        return quota.close(db, hold_id, cost_micros=cost_micros, log=log,
                           account_id=account_id, windows=windows)


def request_cancel(db, job_id: str, account_id: str | None, kinds: Iterable[str],
                   now: float | None = None, keep_s: float = 86_400.0) -> Job | None:
    """Cancel a queued job at once (it has cost nothing); flag a running one for its
    runner. None when there is no such job (for this account)."""
    now = time.time() if now is None else now
    base = [Job.id == job_id, Job.kind.in_(list(kinds))]
    if account_id is not None:
        base.append(Job.account_id == account_id)
    with write_tx(db):
        job = Job.select().where(*base).first(db)
        if job is None:
            return None
        started_batch = job.kind == "batch" and job.phase not in (None, "validating")
        if job.state == "queued" and not started_batch:
            Job.update(state="cancelled", phase=_cancel_phase(job), finished_at=now,
                       **({"cancelling_at": now} if job.kind == "batch" else {}),
                       updated_at=now, cancel_requested=True, expires_at=now + keep_s,
                       webhook_state="pending" if job.callback_url else None,
                       webhook_next_at=0.0).where(Job.id == job_id,
                                                  Job.state == "queued").execute(db)
            from store.batch_lines import BatchLine
            BatchLine.update(state="cancelled").where(BatchLine.batch_id == job_id,
                                                      BatchLine.state == "queued").execute(db)
        elif job.state == "running" or (job.state == "queued" and started_batch):
            # Its runner (or, for a batch some of whose lines ran, the next one to claim
            # it) cuts it and writes what ran to the output file.
            # A batch back in the queue between polls of an upstream batch
            # (gateway.jobs.native) is due at once, so its cancel goes upstream now.
            Job.update(cancel_requested=True, updated_at=now,
                       **({"not_before": 0.0} if job.state == "queued" else {}),
                       phase="cancelling" if job.kind == "batch" else job.phase,
                       **(phase_stamp("cancelling", now) if job.kind == "batch" else {})
                       ).where(Job.id == job_id).execute(db)
        return Job.select().where(Job.id == job_id).first(db)


def _cancel_phase(job: Job) -> str | None:
    return "cancelled" if job.kind == "batch" else job.phase


def sweep_jobs(db, now: float) -> int:
    """Drop ended jobs whose results have been kept long enough (and their lines)."""
    with write_tx(db):
        ids = [r for (r,) in Job.select(Job.id).where(Job.state.in_(ENDED), Job.expires_at.is_null(False),
                                                      Job.expires_at < now).tuples().execute(db)]
        if ids:
            from store.batch_lines import BatchLine
            from store.batch_native import NativeGroup, NativeLine
            BatchLine.delete().where(BatchLine.batch_id.in_(ids)).execute(db)
            NativeLine.delete().where(NativeLine.batch_id.in_(ids)).execute(db)
            NativeGroup.delete().where(NativeGroup.batch_id.in_(ids)).execute(db)
            Job.delete().where(Job.id.in_(ids)).execute(db)
        return len(ids)


# ---------------------------------------------------------------- webhooks

def due_webhooks(db, now: float, limit: int = 20) -> list[Job]:
    with read_tx(db):
        return list(Job.select().where(Job.webhook_state == "pending",
                                       Job.webhook_next_at <= now).limit(limit).execute(db))


def webhook_done(db, job_id: str, state: str, attempts: int, next_at: float | None) -> None:
    with write_tx(db):
        Job.update(webhook_state=state, webhook_attempts=attempts,
                   webhook_next_at=next_at).where(Job.id == job_id).execute(db)


def webhook_secret(db, account_id: str, fresh: str) -> str:
    """The account's signing secret, made (from ``fresh``) on first use."""
    with write_tx(db):
        row = WebhookSecret.select().where(WebhookSecret.account_id == account_id).first(db)
        if row is not None:
            return row.secret
        WebhookSecret.insert(account_id=account_id, secret=fresh, created_at=time.time()).execute(db)
        return fresh


# ---------------------------------------------------------------- video

def track_video(db, video_id: str, account_id: str, key_id: str | None) -> None:
    """A runner job for a video (same id), unless it has one already."""
    with write_tx(db):
        if not Job.select(Job.id).where(Job.id == video_id).exists(db):
            now = time.time()
            Job.insert(id=video_id, kind="video", account_id=account_id, key_id=key_id,
                       payload="{}", created_at=now, updated_at=now).execute(db)


def track_unfinished_videos(db) -> int:
    """Start-up: every video not yet ended and billed gets its runner job (videos
    created before the runner took them over, or whose process died between creating
    the video and its runner job)."""
    from store.media import unfinished_video_jobs
    n = 0
    for v in unfinished_video_jobs(db):
        with write_tx(db):
            if not Job.select(Job.id).where(Job.id == v.id).exists(db):
                now = time.time()
                Job.insert(id=v.id, kind="video", account_id=v.account_id, key_id=v.key_id,
                           payload="{}", created_at=now, updated_at=now).execute(db)
                n += 1
            else:
                # Ended by a runner that stopped short of billing it: run it again.
                (Job.update(state="queued", lease_owner=None, lease_expires=None)
                 .where(Job.id == v.id, Job.state.in_(ENDED)).execute(db))
    return n
