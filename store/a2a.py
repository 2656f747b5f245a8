"""A2A tasks (gateway.a2a): one row per task, owned by one account.

The task itself (status, history, artifacts) is kept as the JSON the agent protocol
returns, so `tasks/get` answers from the row as it stands; state is a column too, so a
cancel can be one guarded update (only a task not yet in a final state changes).
Another account's task id reads exactly like a missing one.

Push notification configs (A2APushConfig) belong to a task and so to its account; each
row is one webhook the task's updates are posted to (through gateway.a2a.push's SSRF
guard), with the token and credentials the client asked us to present.
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


def a2a_context_history(db, context_id: str, account_id: str, *, before: float | None = None,
                        limit: int = 20) -> list[dict[str, Any]]:
    """The account's tasks in one context, oldest first (at most the `limit` newest),
    created before `before` when given: the conversation a new task there continues."""
    with read_tx(db):
        query = A2ATask.select().where((A2ATask.context_id == context_id)
                                       & (A2ATask.account_id == account_id))
        if before is not None:
            query = query.where(A2ATask.created_at < before)
        rows = list(query.order_by(A2ATask.created_at.desc()).limit(limit).execute(db))
    return [json.loads(r.task_json) for r in reversed(rows)]


class A2APushConfig(_Base):
    """One webhook of one task. `protocol` is the A2A version whose method set it
    ("0.3" or "1.0"): it decides the shape of what is posted."""
    task_id = pw.CharField(index=True)
    config_id = pw.CharField()
    account_id = pw.CharField(index=True)
    url = pw.TextField()
    token = pw.TextField(null=True)
    auth_json = pw.TextField(null=True)
    protocol = pw.CharField(default="0.3")
    created_at = pw.FloatField()

    class Meta:
        table_name = "a2a_push_config"
        indexes = ((("task_id", "config_id"), True),)


def _push_dict(row: A2APushConfig) -> dict[str, Any]:
    return {"task_id": row.task_id, "id": row.config_id, "url": row.url, "token": row.token,
            "authentication": json.loads(row.auth_json) if row.auth_json else None,
            "protocol": row.protocol}


def save_a2a_push_config(db, *, task_id: str, account_id: str, config_id: str, url: str,
                         token: str | None, authentication: dict[str, Any] | None,
                         protocol: str, max_per_task: int, now: float | None = None
                         ) -> dict[str, Any] | None:
    """Set (insert or replace by id) one webhook of the account's task. None when the
    task is not the account's; ValueError when the task already has `max_per_task`."""
    now = time.time() if now is None else now
    with write_tx(db):
        task = (A2ATask.select().where((A2ATask.id == task_id)
                                       & (A2ATask.account_id == account_id)).first(db))
        if task is None:
            return None
        fields = dict(url=url, token=token, protocol=protocol,
                      auth_json=json.dumps(authentication) if authentication else None)
        mine = (A2APushConfig.task_id == task_id) & (A2APushConfig.config_id == config_id)
        if A2APushConfig.select().where(mine).first(db) is not None:
            A2APushConfig.update(**fields).where(mine).execute(db)
        else:
            count = A2APushConfig.select().where(A2APushConfig.task_id == task_id).count(db)
            if count >= max_per_task:
                raise ValueError(f"a task has at most {max_per_task} push notification configs")
            A2APushConfig.insert(task_id=task_id, config_id=config_id, account_id=account_id,
                                 created_at=now, **fields).execute(db)
        return _push_dict(A2APushConfig.select().where(mine).first(db))


def list_a2a_push_configs(db, task_id: str, account_id: str) -> list[dict[str, Any]]:
    with read_tx(db):
        rows = list(A2APushConfig.select()
                    .where((A2APushConfig.task_id == task_id)
                           & (A2APushConfig.account_id == account_id))
                    .order_by(A2APushConfig.created_at, A2APushConfig.id).execute(db))
    return [_push_dict(r) for r in rows]


def delete_a2a_push_config(db, task_id: str, account_id: str, config_id: str) -> bool:
    with write_tx(db):
        return bool(A2APushConfig.delete().where(
            (A2APushConfig.task_id == task_id) & (A2APushConfig.account_id == account_id)
            & (A2APushConfig.config_id == config_id)).execute(db))


def list_a2a_tasks(db, account_id: str, agent_id: str, *, context_id: str | None = None,
                   state: str | None = None, limit: int = 50, offset: int = 0
                   ) -> tuple[list[dict[str, Any]], int]:
    """One page of the account's tasks with one agent, newest first, and how many
    match in all."""
    with read_tx(db):
        query = A2ATask.select().where((A2ATask.account_id == account_id)
                                       & (A2ATask.agent_id == agent_id))
        if context_id:
            query = query.where(A2ATask.context_id == context_id)
        if state:
            query = query.where(A2ATask.state == state)
        total = query.count(db)
        rows = list(query.order_by(A2ATask.created_at.desc(), A2ATask.id)
                    .limit(limit).offset(offset).execute(db))
    return [json.loads(r.task_json) for r in rows], total
