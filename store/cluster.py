"""What several gateway processes on one store share beyond the books.

- ClusterNode: one row per live process, its heartbeat and a small JSON of what it
  is doing (in-flight requests), for the dashboard and for start-up: a process that
  finds no other live node may treat every open hold as orphaned.
- ClusterEvent: an append-only feed of changes every process must apply within a
  second (a key revoked, provider flags changed, the config reloaded). Each process
  polls for rows past the last id it saw; one indexed read, a few times a second.
- RateTat: rate-limit state (GCRA theoretical arrival times) when several processes
  share limits and there is no Redis. The TATs are kept as text: scaled by the rate
  they outgrow a 64-bit integer.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable

from store.db import read_tx, write_tx


_BEAT = """INSERT INTO cluster_node (id, host, pid, started_at, seen_at, info)
 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at,
 info = excluded.info"""


def heartbeat(db, node_id: str, host: str, pid: int, started_at: float,
              info: dict[str, Any], now: float | None = None) -> None:
    now = time.time() if now is None else now
    with write_tx(db):
        db.execute_sql(_BEAT, (node_id, host, pid, started_at, now, json.dumps(info)))


def leave(db, node_id: str) -> None:
    with write_tx(db):
        db.execute_sql("DELETE FROM cluster_node WHERE id = ?", (node_id,))


def live_nodes(db, stale_after: float, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    with read_tx(db):
        rows = db.execute_sql("SELECT id, host, pid, started_at, seen_at, info FROM "
                              "cluster_node WHERE seen_at > ? ORDER BY started_at, id",
                              (now - stale_after,)).fetchall()
    return [{"id": r[0], "host": r[1], "pid": r[2], "started_at": r[3], "seen_at": r[4],
             **json.loads(r[5])} for r in rows]


def post_event(db, kind: str, payload: dict[str, Any], *, origin: str = "",
               now: float | None = None) -> int:
    """Inside the caller's write transaction, so the event stands or falls with the
    change it announces; returns its id."""
    now = time.time() if now is None else now
    return db.execute_sql("INSERT INTO cluster_event (at, origin, kind, payload) "
                          "VALUES (?, ?, ?, ?) RETURNING id",
                          (now, origin, kind, json.dumps(payload))).fetchone()[0]


def publish(db, kind: str, payload: dict[str, Any], *, origin: str = "",
            now: float | None = None) -> int:
    """Append an event for every process; returns its id."""
    with write_tx(db):
        return post_event(db, kind, payload, origin=origin, now=now)


def others_alive(db, node_id: str, stale_after: float, now: float) -> bool:
    row = db.execute_sql("SELECT COUNT(*) FROM cluster_node WHERE id != ? AND seen_at > ?",
                         (node_id, now - stale_after)).fetchone()
    return row[0] > 0


def last_event_id(db) -> int:
    with read_tx(db):
        return db.execute_sql("SELECT COALESCE(MAX(id), 0) FROM cluster_event").fetchone()[0]


def events_after(db, after_id: int, limit: int = 500) -> list[tuple[int, str, str, dict]]:
    """(id, origin, kind, payload) of the events past `after_id`, oldest first."""
    with read_tx(db):
        rows = db.execute_sql("SELECT id, origin, kind, payload FROM cluster_event "
                              "WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
    return [(i, o, k, json.loads(p)) for i, o, k, p in rows]


def prune(db, now: float, *, events_older_than: float = 3600.0) -> None:
    """Drop events nobody can still be behind on, and rate state nobody can reach."""
    with write_tx(db):
        db.execute_sql("DELETE FROM cluster_event WHERE at < ?", (now - events_older_than,))
        db.execute_sql("DELETE FROM rate_tat WHERE expires_at < ?", (now,))


def load_tats(db, slots: Iterable[str]) -> dict[str, int]:
    """Inside the caller's write transaction: the stored TATs of `slots`."""
    slots = list(slots)
    marks = ", ".join("?" * len(slots))
    rows = db.execute_sql(f"SELECT slot, tat FROM rate_tat WHERE slot IN ({marks})",
                          slots).fetchall()
    return {slot: int(tat) for slot, tat in rows}


def save_tats(db, tats: dict[str, tuple[int, float]]) -> None:
    """Inside the caller's write transaction: slot -> (tat, expires_at)."""
    for slot, (tat, expires_at) in tats.items():
        db.execute_sql("INSERT INTO rate_tat (slot, tat, expires_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (slot) DO UPDATE SET tat = excluded.tat, "
                       "expires_at = excluded.expires_at", (slot, str(tat), expires_at))


def all_nodes(db) -> list[dict[str, Any]]:
    """Every heartbeat row, stale ones included (the cluster view marks them)."""
    with read_tx(db):
        rows = db.execute_sql("SELECT id, host, pid, started_at, seen_at, info FROM "
                              "cluster_node ORDER BY started_at, id").fetchall()
    return [{"id": r[0], "host": r[1], "pid": r[2], "started_at": r[3], "seen_at": r[4],
             "info": json.loads(r[5])} for r in rows]
