"""A gateway for the job tests: the HTTP simulator upstream, an embeddings model, and a
runner tuned to poll and retry fast (the jobs' own timing is what these tests watch)."""
from __future__ import annotations

import os
from pathlib import Path

import harness

JOBS = {"poll_interval": 0.05, "lease_seconds": 2.0, "retry_base_seconds": 0.1,
        "sweep_interval": 0.2,
        "webhook_allow_private": True, "batch_line_concurrency": 8}
EMBED = {"id": "emb", "capabilities": ["embeddings"], "input_usd_per_mtok": 1.0,
         "routes": [{"provider": "up", "model": "sim-embed"}]}


def store_for(request) -> dict:
    """The [store] overrides of tests/conftest.py's gateway fixtures (SQLite unless
    PRISM_TEST_STORE=postgresql), for gateways these tests start themselves."""
    if os.environ.get("PRISM_TEST_STORE", "sqlite") == "sqlite":
        return {}
    import pgtest
    database = request.getfixturevalue("pg_database")
    schema, url = pgtest.fresh_schema(database)
    request.addfinalizer(lambda: pgtest.drop_schema(database, schema))
    return {"url": url}


def start(tmp: Path, sim_url: str, request=None, **kw) -> harness.Gateway:
    """``request`` (the test's) puts the store on PostgreSQL when PRISM_TEST_STORE says."""
    base = harness.gateway_config(tmp, sim_url)
    jobs = {**JOBS, **kw.pop("jobs", {})}
    if request is not None and "store" not in kw:
        kw["store"] = store_for(request)
    return harness.start_gateway(tmp, sim_url, models=base["models"] + [EMBED], jobs=jobs, **kw)


def settles(db, account_id: str) -> dict[str, int]:
    """{request id: amount charged} of every settlement on the account's wallet."""
    import store
    wallet = store.get_wallet(db, account_id)
    rows = (store.LedgerEntry.select()
            .where(store.LedgerEntry.wallet == wallet.id, store.LedgerEntry.kind == "settle"))
    out: dict[str, int] = {}
    for e in rows.execute(db):
        assert e.request_id not in out, f"{e.request_id} settled twice"
        out[e.request_id] = -e.amount_micros
    return out
