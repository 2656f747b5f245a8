"""The hold sweeper's one job: end every orphaned hold, wallet and window alike, and
drop idempotency records past their day and window-usage buckets past 7 days. At start-up every open hold is an orphan
(the process that made it is gone); afterwards only those past their TTL are."""
from __future__ import annotations

import time
from dataclasses import dataclass

from store.cluster import others_alive
from store.db import write_tx
from store.idempotency import purge_idempotency
from store.ledger import expire_all_open, expire_holds
from store.quota import expire_all_open_quota, expire_quota_holds, prune_usage


@dataclass(frozen=True)
class Swept:
    wallet_holds: int
    window_holds: int
    idempotency_records: int

    @property
    def holds(self) -> int:
        return self.wallet_holds + self.window_holds


def sweep(db, now: float | None = None) -> Swept:
    now = time.time() if now is None else now
    swept = Swept(expire_holds(db, now), expire_quota_holds(db, now),
                  purge_idempotency(db, now))
    prune_usage(db, now)   # window sums no window can reach any more
    return swept


def startup_sweep(db, now: float | None = None, *, node_id: str | None = None,
                  stale_after: float = 10.0) -> Swept:
    """At start-up every open hold is an orphan, unless another process (a live
    heartbeat other than `node_id`'s) shares the store: its holds are in flight, so
    then only the expired ones go. One transaction, so a process that registers
    meanwhile cannot have its holds swept under it."""
    now = time.time() if now is None else now
    with write_tx(db):
        if node_id is not None and others_alive(db, node_id, stale_after, now):
            return sweep(db, now)
        return Swept(expire_all_open(db, now=now), expire_all_open_quota(db, now=now),
                     purge_idempotency(db, now, pending_too=True))
