"""Assistants API objects: assistants, threads, messages, runs and run steps.

Each table keeps the columns the store queries by (owner, parent, status, time) and the
rest of the object as JSON in `data`: the API's objects are wide, change shape often,
and are only ever read whole. Every read and write names the owning account, so another
account's id finds nothing. Run status moves only by guarded updates (`expect`), so a
cancel and the runner finishing cannot both win.
"""
from __future__ import annotations

import json
from typing import Any

import peewee as pw

from store.lazy_tx import read_tx, write_tx
from store.models import _Base
from store.paging import page

RUN_ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")




class _Obj(_Base):
    id = pw.CharField(primary_key=True)
    account_id = pw.CharField(index=True)
    parent_id = pw.CharField(null=True, index=True)    # thread of a message/run, run of a step
    status = pw.CharField(null=True, index=True)
    created_at = pw.FloatField()
    data = pw.TextField()

    def obj(self) -> dict[str, Any]:
        return json.loads(self.data)


class Assistant(_Obj):
    class Meta:
        table_name = "assistant"


class Thread(_Obj):
    class Meta:
        table_name = "assistant_thread"


class ThreadMessage(_Obj):
    class Meta:
        table_name = "assistant_message"


class Run(_Obj):
    class Meta:
        table_name = "assistant_run"


class RunStep(_Obj):
    class Meta:
        table_name = "assistant_run_step"


TABLES = (Assistant, Thread, ThreadMessage, Run, RunStep)


def _row(obj: dict, account_id: str, parent_id: str | None = None) -> dict:
    return {"id": obj["id"], "account_id": account_id, "parent_id": parent_id,
            "status": obj.get("status"), "created_at": obj.get("_t", obj["created_at"]),
            "data": json.dumps(obj)}


def insert(db, model, objs: list[dict], account_id: str, parent_id: str | None = None) -> None:
    with write_tx(db):
        for o in objs:
            model.insert(**_row(o, account_id, parent_id)).execute(db)


def get(db, model, obj_id: str, account_id: str, parent_id: str | None = None) -> dict | None:
    q = model.select().where(model.id == obj_id, model.account_id == account_id)
    if parent_id is not None:
        q = q.where(model.parent_id == parent_id)
    with read_tx(db):
        row = q.first(db)
    return row.obj() if row is not None else None


def listing(db, model, account_id: str, parent_id: str | None, *, limit: int,
            after: str | None, order: str) -> tuple[list[dict], bool]:
    with read_tx(db):
        q = model.select().where(model.account_id == account_id)
        if parent_id is not None:
            q = q.where(model.parent_id == parent_id)
        rows, more = page(db, q, model, after=after, order=order, limit=limit)
    return [r.obj() for r in rows], more


def all_of(db, model, account_id: str, parent_id: str) -> list[dict]:
    with read_tx(db):
        q = (model.select().where(model.account_id == account_id, model.parent_id == parent_id)
             .order_by(model.created_at, model.id))
        return [r.obj() for r in q.execute(db)]


def update(db, model, obj_id: str, account_id: str, patch: dict, *,
           expect: tuple[str, ...] | None = None) -> dict | None:
    """Merge `patch` into the object; with `expect`, only while its status is one of
    those (None when it is not, or the object is not the caller's)."""
    with write_tx(db):
        q = model.select().where(model.id == obj_id, model.account_id == account_id)
        if expect is not None:
            q = q.where(model.status.in_(expect))
        row = q.first(db)
        if row is None:
            return None
        obj = {**row.obj(), **patch}
        (model.update(data=json.dumps(obj), status=obj.get("status"))
         .where(model.id == obj_id).execute(db))
        return obj


def delete(db, model, obj_id: str, account_id: str) -> bool:
    with write_tx(db):
        n = model.delete().where(model.id == obj_id, model.account_id == account_id).execute(db)
        if n and model is Thread:
            runs = [r.id for r in Run.select(Run.id).where(Run.parent_id == obj_id).execute(db)]
            if runs:
                RunStep.delete().where(RunStep.parent_id.in_(runs)).execute(db)
            ThreadMessage.delete().where(ThreadMessage.parent_id == obj_id).execute(db)
            Run.delete().where(Run.parent_id == obj_id).execute(db)
        return n > 0


def active_run(db, thread_id: str) -> str | None:
    with read_tx(db):
        row = (Run.select(Run.id).where(Run.parent_id == thread_id, Run.status.in_(RUN_ACTIVE))
               .first(db))
    return row.id if row is not None else None


def runs_in(db, statuses: tuple[str, ...]) -> list[tuple[str, str]]:
    """(run id, account id) of every run in one of `statuses`, for start-up recovery."""
    with read_tx(db):
        return list(Run.select(Run.id, Run.account_id).where(Run.status.in_(statuses))
                    .tuples().execute(db))


def end_open_children(db, run_id: str, account_id: str, run_status: str, now: int,
                      error: dict | None = None) -> int:
    """When a run ends failed, cancelled or expired with work open (a restart, a cancel,
    an error mid-call): its in_progress steps end with it and its in_progress messages
    become incomplete, so nothing stays in_progress forever. How many were ended."""
    reason = {"failed": "run_failed", "cancelled": "run_cancelled", "expired": "run_expired"}[run_status]
    n = 0
    with write_tx(db):
        run = Run.select().where(Run.id == run_id, Run.account_id == account_id).first(db)
        if run is None:
            return 0
        steps = RunStep.select().where(RunStep.parent_id == run_id, RunStep.account_id == account_id,
                                       RunStep.status == "in_progress")
        for row in list(steps.execute(db)):
            obj = {**row.obj(), "status": run_status, f"{run_status}_at": now,
                   "last_error": error if run_status == "failed" else None}
            RunStep.update(data=json.dumps(obj), status=run_status).where(RunStep.id == row.id).execute(db)
            n += 1
        msgs = ThreadMessage.select().where(ThreadMessage.parent_id == run.parent_id,
                                            ThreadMessage.account_id == account_id,
                                            ThreadMessage.status == "in_progress")
        for row in list(msgs.execute(db)):
            obj = row.obj()
            if obj.get("run_id") != run_id:
                continue
            obj.update({"status": "incomplete", "incomplete_at": now,
                        "incomplete_details": {"reason": reason}})
            (ThreadMessage.update(data=json.dumps(obj), status="incomplete")
             .where(ThreadMessage.id == row.id).execute(db))
            n += 1
    return n
