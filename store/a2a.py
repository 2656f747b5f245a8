"""A2A tasks (gateway.a2a): one row per task, owned by one account.

The task itself (status, history, artifacts) is kept as the JSON the agent protocol
returns, so `tasks/get` answers from the row as it stands; state is a column too, so a
cancel can be one guarded update (only a task not yet in a final state changes).
Another account's task id reads exactly like a missing one.
"""
from __future__ import annotations

import json
import time
from typing import Any

import peewee as pw

from store.media import read_tx, write_tx   # looked up lazily: store.db imports us
from store.models import _Base

FINAL_STATES = ("completed", "canceled", "failed", "rejected")


class A2ATask(_Base):
    id = pw.CharField(primary_key=True)
    account_id = pw.CharField(index=True)
    agent_id = pw.CharField()
    context_id = pw.CharField()
    state = pw.CharField()
    task_json = pw.TextField()
    cost_micros = pw.BigIntegerField(default=0)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()

    class Meta:
        table_name = "a2a_task"


def save_a2a_task(db, task: dict[str, Any], *, account_id: str, agent_id: str,
                  cost_micros: int = 0, now: float | None = None) -> bool:
    """Insert or update a task; an update never moves a task out of a final state (a
    cancel that won the race stays cancelled). Returns whether the row was written."""
    now = time.time() if now is None else now
    state = task["status"]["state"]
    with write_tx(db):
        row = A2ATask.get_or_none(A2ATask.id == task["id"])
        if row is None:
            A2ATask.insert(id=task["id"], account_id=account_id, agent_id=agent_id,
                           context_id=task["contextId"], state=state,
                           task_json=json.dumps(task), cost_micros=cost_micros,
                           created_at=now, updated_at=now).execute(db)
            return True
        if row.account_id != account_id or row.state in FINAL_STATES:
            return False
        (A2ATask.update(state=state, task_json=json.dumps(task),
                        cost_micros=A2ATask.cost_micros + cost_micros, updated_at=now)
         .where(A2ATask.id == task["id"]).execute(db))
        return True


def get_a2a_task(db, task_id: str, account_id: str) -> tuple[str, dict[str, Any]] | None:
    """(agent id, task) for the account's task, or None."""
    with read_tx(db):
        row = (A2ATask.select().where((A2ATask.id == task_id) & (A2ATask.account_id == account_id))
               .first(db))
    return None if row is None else (row.agent_id, json.loads(row.task_json))
