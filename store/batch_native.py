"""Batch lines sent to an upstream's own batch API (gateway.jobs.native): one row per
upstream batch (a group: the lines of one batch bound for one provider and upstream
model) and one per line in it, and one function per transaction.

A group's state machine, every move guarded by the batch's lease:

    preparing --(every line admitted)--> submitting --(upstream id known)--> submitted
        |                                    |                                  |
        +--> dropped (lines back to the line-by-line path)                     v
                                                                           collected

The upstream id is written in its own transaction as soon as the upstream answers, so a
runner that takes the batch over later polls that upstream batch rather than sending a
second one. A line's hold is recorded with the line (hold id and its generation): the
hold is kept alive while the group is pending (``keep_holds`` pushes its expiry on), and
a hold a restart swept is replaced before the line settles.
"""
from __future__ import annotations

import time
from typing import Any

import peewee as pw

from store.jobs import Job, _owned
from store.lazy_tx import read_tx, write_tx
from store.models import Hold, QuotaHold, _Base, _one_of

GROUP_STATES = ("preparing", "submitting", "submitted", "collected", "dropped")
PENDING = ("preparing", "submitting", "submitted")


class NativeGroup(_Base):
    id = pw.CharField(primary_key=True)              # '<batch id>:n<k>'
    batch_id = pw.CharField(index=True)
    provider = pw.CharField()
    upstream_model = pw.CharField()
    state = pw.CharField(default="preparing")
    upstream_id = pw.CharField(null=True)
    upstream_file_id = pw.CharField(null=True)       # OpenAI: the uploaded input file
    cancel_sent = pw.BooleanField(default=False)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()

    class Meta:
        table_name = "batch_native_group"
        constraints = [_one_of("state", GROUP_STATES)]


class NativeLine(_Base):
    line_id = pw.CharField(primary_key=True)         # the batch_line's id
    group_id = pw.CharField(index=True)
    batch_id = pw.CharField(index=True)
    attempt = pw.IntegerField()                      # the line's attempt this is
    request_id = pw.CharField()
    model_id = pw.CharField()                        # the public model, priced at settlement
    hold_id = pw.CharField()
    hold_micros = pw.BigIntegerField()
    hold_gen = pw.IntegerField(default=0)
    wire = pw.TextField()                            # the line as the upstream gets it

    class Meta:
        table_name = "batch_native_line"


TABLES = (NativeGroup, NativeLine)


def _ours(db, batch_id: str, owner: str) -> bool:
    return Job.select(Job.id).where(_owned(batch_id, owner)).exists(db)


def groups(db, batch_id: str) -> list[NativeGroup]:
    with read_tx(db):
        return list(NativeGroup.select().where(NativeGroup.batch_id == batch_id)
                    .order_by(NativeGroup.id).execute(db))


def lines_of(db, group_id: str) -> list[NativeLine]:
    with read_tx(db):
        return list(NativeLine.select().where(NativeLine.group_id == group_id).execute(db))


def pending_line_ids(db, batch_id: str) -> set[str]:
    """The lines of this batch held by a group still pending upstream."""
    with read_tx(db):
        q = (NativeLine.select(NativeLine.line_id)
             .join(NativeGroup, on=(NativeLine.group_id == NativeGroup.id))
             .where(NativeLine.batch_id == batch_id, NativeGroup.state.in_(PENDING)))
        return {r for (r,) in q.tuples().execute(db)}


def new_group(db, batch_id: str, owner: str, group_id: str, provider: str,
              upstream_model: str) -> bool:
    with write_tx(db):
        if not _ours(db, batch_id, owner):
            return False
        now = time.time()
        NativeGroup.insert(id=group_id, batch_id=batch_id, provider=provider,
                           upstream_model=upstream_model, created_at=now,
                           updated_at=now).execute(db)
        return True


def add_line(db, batch_id: str, owner: str, row: dict) -> bool:
    """Record an admitted line in its group (its hold is open from here on)."""
    with write_tx(db):
        if not _ours(db, batch_id, owner):
            return False
        NativeLine.insert(batch_id=batch_id, **row).execute(db)
        return True


def move(db, group_id: str, batch_id: str, owner: str, frm: tuple[str, ...],
         **fields: Any) -> bool:
    """A guarded move of a group (from one of ``frm``); False when not ours or moved."""
    fields["updated_at"] = time.time()
    with write_tx(db):
        if not _ours(db, batch_id, owner):
            return False
        return (NativeGroup.update(**fields)
                .where(NativeGroup.id == group_id, NativeGroup.state.in_(list(frm)))
                .execute(db)) > 0


def drop(db, group_id: str, batch_id: str, owner: str) -> list[NativeLine]:
    """The group never reached its upstream: forget it, so its lines run line by line.
    Returns its lines, whose holds the caller voids."""
    with write_tx(db):
        if not _ours(db, batch_id, owner):
            return []
        rows = list(NativeLine.select().where(NativeLine.group_id == group_id).execute(db))
        NativeLine.delete().where(NativeLine.group_id == group_id).execute(db)
        NativeGroup.update(state="dropped", updated_at=time.time()).where(
            NativeGroup.id == group_id).execute(db)
        return rows


def set_hold(db, line_id: str, hold_id: str, gen: int) -> None:
    with write_tx(db):
        NativeLine.update(hold_id=hold_id, hold_gen=gen).where(
            NativeLine.line_id == line_id).execute(db)


def keep_holds(db, hold_ids: list[str], until: float) -> set[str]:
    """Push the expiry of these holds (wallet or window) on to ``until``, so the periodic
    sweep leaves a long upstream batch's holds alone; the ids still open come back."""
    if not hold_ids:
        return set()
    out: set[str] = set()
    with write_tx(db):
        for model in (Hold, QuotaHold):
            for i in range(0, len(hold_ids), 500):
                part = hold_ids[i:i + 500]
                model.update(expires_at=until).where(model.id.in_(part),
                                                     model.state == "open").execute(db)
                out |= {r for (r,) in model.select(model.id).where(
                    model.id.in_(part), model.state == "open").tuples().execute(db)}
    return out


def summary(db, batch_id: str) -> list[dict]:
    """The operator's view of a batch's upstream batches (/-/batches/{id})."""
    with read_tx(db):
        counts = dict(NativeLine.select(NativeLine.group_id, pw.fn.COUNT(NativeLine.line_id))
                      .where(NativeLine.batch_id == batch_id).group_by(NativeLine.group_id)
                      .tuples().execute(db))
        return [{"id": g.id, "provider": g.provider, "upstream_model": g.upstream_model,
                 "upstream_id": g.upstream_id, "state": g.state, "cancel_sent": g.cancel_sent,
                 "lines": counts.get(g.id, 0), "created_at": int(g.created_at)}
                for g in NativeGroup.select().where(NativeGroup.batch_id == batch_id)
                .order_by(NativeGroup.created_at, NativeGroup.id).execute(db)]
