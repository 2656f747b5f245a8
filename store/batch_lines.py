"""The lines of batches (store.jobs holds the batches themselves): one row per input
line, and one function per transaction.

Every write of a running line is guarded twice: the batch must still be leased to the
writer (store.jobs), and the line must still be on the attempt the writer started. A
line's settlement and its result are one transaction (store.jobs.settle_with with
`line_writer`), so a line is charged at most once across retries and restarts.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import peewee as pw

from store.jobs import Job, _owned, phase_stamp
from store.lazy_tx import read_tx, write_tx
from store.models import _Base, _one_of

LINE_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class BatchLine(_Base):
    id = pw.CharField(primary_key=True)              # '<batch id>:<index>'
    batch_id = pw.CharField(index=True)
    idx = pw.IntegerField()
    custom_id = pw.CharField()
    url = pw.CharField()                             # the line's route
    state = pw.CharField(default="queued")
    attempts = pw.IntegerField(default=0)
    body = pw.TextField()
    status_code = pw.IntegerField(null=True)
    response = pw.TextField(null=True)
    error = pw.TextField(null=True)
    cost_micros = pw.BigIntegerField(default=0)
    request_id = pw.CharField(null=True)             # the settled request

    class Meta:
        table_name = "batch_line"
        indexes = ((("batch_id", "state"), False),)
        constraints = [_one_of("state", LINE_STATES), pw.SQL("CHECK (cost_micros >= 0)")]



TABLES = (BatchLine,)


def start_batch(db, batch_id: str, owner: str, lines: list[dict]) -> bool:
    """Validation passed: insert the lines and move the batch to in_progress, at once."""
    with write_tx(db):
        now = time.time()
        if not Job.update(phase="in_progress", updated_at=now,
                          **phase_stamp("in_progress", now)).where(
                _owned(batch_id, owner)).execute(db):
            return False
        for i in range(0, len(lines), 200):
            BatchLine.insert_many(lines[i:i + 200]).execute(db)
        return True


def open_lines(db, batch_id: str) -> list[BatchLine]:
    with read_tx(db):
        return list(BatchLine.select().where(BatchLine.batch_id == batch_id,
                                             BatchLine.state.in_(("queued", "running")))
                    .order_by(BatchLine.idx).execute(db))


def all_lines(db, batch_id: str) -> list[BatchLine]:
    with read_tx(db):
        return list(BatchLine.select().where(BatchLine.batch_id == batch_id)
                    .order_by(BatchLine.idx).execute(db))


def line_counts(db, batch_ids: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {b: {} for b in batch_ids}
    if not batch_ids:
        return out
    with read_tx(db):
        rows = (BatchLine.select(BatchLine.batch_id, BatchLine.state, pw.fn.COUNT(BatchLine.id),
                                 pw.fn.COALESCE(pw.fn.SUM(BatchLine.cost_micros), 0))
                .where(BatchLine.batch_id.in_(batch_ids))
                .group_by(BatchLine.batch_id, BatchLine.state).tuples().execute(db))
        for batch_id, state, n, cost in rows:
            out[batch_id][state] = n
            out[batch_id]["cost"] = out[batch_id].get("cost", 0) + int(cost)
    return out


def _batch_ours(db, batch_id: str, owner: str) -> bool:
    return Job.select(Job.id).where(_owned(batch_id, owner)).exists(db)


def start_line(db, line_id: str, batch_id: str, owner: str) -> int | None:
    """Mark a line running for one more attempt; the attempt number, or None when the
    line or the batch is no longer ours to run."""
    with write_tx(db):
        if not _batch_ours(db, batch_id, owner):
            return None
        n = (BatchLine.update(state="running", attempts=BatchLine.attempts + 1)
             .where(BatchLine.id == line_id, BatchLine.state.in_(("queued", "running")))
             .execute(db))
        if not n:
            return None
        return BatchLine.select(BatchLine.attempts).where(BatchLine.id == line_id).scalar(db)


def line_writer(line_id: str, batch_id: str, owner: str, attempt: int, **fields: Any):
    """The guarded write ending one attempt of a line (for settle_with, or alone)."""
    def apply(db) -> bool:
        if not _batch_ours(db, batch_id, owner):
            return False
        return (BatchLine.update(**fields)
                .where(BatchLine.id == line_id, BatchLine.state == "running",
                       BatchLine.attempts == attempt).execute(db)) > 0
    return apply


def end_line(db, apply: Callable[[Any], bool]) -> bool:
    with write_tx(db):
        return apply(db)


def cancel_open_lines(db, batch_id: str) -> int:
    with write_tx(db):
        return (BatchLine.update(state="cancelled")
                .where(BatchLine.batch_id == batch_id,
                       BatchLine.state.in_(("queued", "running"))).execute(db))
