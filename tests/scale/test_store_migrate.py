"""`prism store migrate --to postgresql://...` on a store with a year of usage."""
from __future__ import annotations

import random
import subprocess
import sys
import time

import store
from nodes import REPO, env
from store.db import write_tx

DAY = 86400.0
USD = 1_000_000


def _year_of_usage(path: str, seed: int = 7) -> dict[str, int]:
    """20 accounts, a year of requests (about 60 a day), monthly top-ups, some voided
    and some expired holds: built through the store's own functions."""
    rng = random.Random(seed)
    db = store.open_database(path)
    start = time.time() - 365 * DAY
    accounts = []
    with write_tx(db):
        for i in range(20):
            account, _, _ = store.create_account_with_key(db, f"cust{i}", 50 * USD, now=start)
            accounts.append(account.id)
        n = 0
        for day in range(365):
            t0 = start + day * DAY
            if day % 30 == 0:
                for a in accounts:
                    store.top_up(db, a, 20 * USD, "monthly", now=t0)
            for _ in range(60):
                n += 1
                t = t0 + rng.uniform(0, DAY - 60)
                a = rng.choice(accounts)
                hold = store.reserve(db, a, f"req_{n}", 40_000, 900, now=t)
                fate = rng.random()
                if fate < 0.9:
                    tin, tout = rng.randrange(10, 2000), rng.randrange(1, 800)
                    store.settle(db, hold.id, tin + 2 * tout, now=t + 2, log=dict(
                        route="/v1/chat/completions", dialect="openai", status=200,
                        model="prism-mini", tokens_in=tin, tokens_out=tout, key_id=None,
                        account_id=a))
                elif fate < 0.97:
                    store.void(db, hold.id, now=t + 1)
        store.expire_holds(db, time.time())   # the rest were orphans
    counts = {m._meta.table_name: m.select().count(db) for m in store.MODELS}
    assert store.check_invariants(db) == []
    db.close()
    return counts


def _migrate(cfg, to: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "store", "migrate",
                           "--config", str(cfg), "--to", to], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=300)


def test_migrate_a_year_of_usage_to_postgresql_then_refuse_a_second_copy(tmp_path, pg_store):
    source = tmp_path / "prism.db"
    counts = _year_of_usage(str(source))
    assert counts["request_log"] > 19_000 and counts["ledger_entry"] > 40_000
    cfg = tmp_path / "prism.toml"
    cfg.write_text('[store]\npath = "prism.db"\n', encoding="utf-8")

    done = _migrate(cfg, pg_store)
    assert done.returncode == 0, done.stderr
    assert "money audit clean" in done.stdout

    src, dst = store.open_database(str(source)), store.open_database(pg_store)
    try:
        assert {m._meta.table_name: m.select().count(dst) for m in store.MODELS} == counts
        assert store.check_invariants(dst) == []
        for key in store.list_keys(src):
            a, b = store.get_wallet(src, key.account_id), store.get_wallet(dst, key.account_id)
            assert (a.balance_micros, a.held_micros) == (b.balance_micros, b.held_micros)
            assert ([(e.id, e.kind, e.amount_micros, e.balance_after)
                     for e in store.ledger_rows(src, key.account_id)]
                    == [(e.id, e.kind, e.amount_micros, e.balance_after)
                        for e in store.ledger_rows(dst, key.account_id)])
        # The copy is a working store: new rows continue after the copied ids.
        account = store.list_keys(dst)[0].account_id
        store.top_up(dst, account, USD, "after the move")
        assert store.check_invariants(dst) == []
    finally:
        src.close()
        dst.close()

    again = _migrate(cfg, pg_store)
    assert again.returncode == 1 and "not empty" in again.stderr
    assert "Traceback" not in again.stderr
