"""Money-path benchmark: what admission + settlement + the request log cost per request,
and how many settled requests per second the store sustains.

    python tests/bench/bench_money.py [--requests N] [--concurrency C] [--json out.json]

Not a pytest module. Each phase runs on a fresh SQLite file in a temp folder:

    store, sync       admit + close (with its log row) called directly on one connection:
                      the SQL and Python cost of the two transactions, nothing else
    writer            C concurrent trio tasks, each admit then close through the Writer
                      thread: what the gateway's request path actually waits on; with
                      batch_max=1 (a commit per job) and 64 (group commit)
    admission         the same through gateway.engine.admission (plan lookup, rate
                      limits, headers, the observers) with a real Services
    window history    admission against a 7d window already holding H settled requests
                      (the window sum scans them through a covering index)

For each: mean microseconds per settled request, settled requests per second, and
the p50/p99 of one request's admit + close. On a shared machine the mean and p99
include preemption by other processes; the p50 is the intrinsic cost.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import trio  # noqa: E402

import store  # noqa: E402
from gateway.billing.windows import plan_windows  # noqa: E402
from gateway.config import PlanConfig, parse_config  # noqa: E402

PLAN = PlanConfig(id="pro", window_5h_usd=1e6, window_7d_usd=1e7)
LOG = {"route": "/v1/chat/completions", "dialect": "openai", "status": 200,
       "model": "bench", "provider": "sim", "upstream_model": "sim", "tokens_in": 120,
       "tokens_out": 80, "latency_ms": 12.0, "stream": False}


def fresh_db(tmp: str, name: str):
    path = os.path.join(tmp, f"{name}.db")
    db = store.open_database(path)
    return path, db


def fund(db, plan: str | None = None) -> str:
    account = store.create_account(db, "bench", plan=plan)
    store.top_up(db, account.id, 10**12, "bench")
    return account.id


def one_request(db, account_id: str, i: int, windows, plan: str | None) -> None:
    got = store.admit(db, account_id, f"r{i}", 5_000, 900, plan=plan, windows=windows,
                      input_tokens=120, output_tokens=1000)
    store.quota.close(db, got.hold_id, cost_micros=2_000, input_tokens=120, output_tokens=80,
                      log={**LOG, "account_id": account_id}, account_id=account_id,
                      windows=windows)


def bench_sync(tmp: str, n: int, funded_by: str) -> dict:
    _, db = fresh_db(tmp, f"sync-{funded_by}")
    plan = PLAN if funded_by == "window" else None
    account_id = fund(db, plan.id if plan else None)
    lat: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        t1 = time.perf_counter()
        windows = plan_windows(plan, time.time()) if plan else ()
        one_request(db, account_id, i, windows, plan.id if plan else None)
        lat.append(time.perf_counter() - t1)
    dt = time.perf_counter() - t0
    assert store.check_invariants(db) == []
    db.close()
    return _figures(f"store, sync, {funded_by}", n, dt, lat)


async def _writer_run(writer, n: int, concurrency: int, account_id: str, plan) -> list[float]:
    latencies: list[float] = []
    limiter = trio.CapacityLimiter(concurrency)

    async def job(i: int) -> None:
        async with limiter:
            t0 = time.perf_counter()
            windows = plan_windows(plan, time.time()) if plan else ()
            got = await writer.call(store.admit, account_id, f"r{i}", 5_000, 900,
                                    plan=plan.id if plan else None, windows=windows,
                                    input_tokens=120, output_tokens=1000)
            await writer.call(store.quota.close, got.hold_id, cost_micros=2_000,
                              input_tokens=120, output_tokens=80,
                              log={**LOG, "account_id": account_id}, account_id=account_id,
                              windows=windows)
            latencies.append(time.perf_counter() - t0)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(job, i)
    return latencies


def bench_writer(tmp: str, n: int, concurrency: int, funded_by: str, batch_max: int) -> dict:
    path, db = fresh_db(tmp, f"writer-{funded_by}-{concurrency}-{batch_max}")
    plan = PLAN if funded_by == "window" else None
    account_id = fund(db, plan.id if plan else None)
    db.close()
    writer = store.Writer(path, batch_max=batch_max)
    writer.start()
    try:
        t0 = time.perf_counter()
        lat = trio.run(_writer_run, writer, n, concurrency, account_id, plan)
        dt = time.perf_counter() - t0
    finally:
        writer.close()
    return _figures(f"writer, {funded_by}, c={concurrency}, batch_max={batch_max}", n, dt, lat)


def _figures(phase: str, n: int, dt: float, lat: list[float]) -> dict:
    lat.sort()
    return {"phase": phase, "requests": n, "us_per_request": dt / n * 1e6,
            "settled_per_s": n / dt, "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1e3}


def bench_admission(tmp: str, n: int, concurrency: int, funded_by: str,
                    batch_max: int) -> dict:
    """The whole money side of a request through gateway.engine.admission."""
    from gateway import canonical as c
    from gateway.engine.call import CallContext, Prepared
    from gateway.routing.select import select
    from gateway.server import build_services

    path = os.path.join(tmp, f"admission-{funded_by}-{batch_max}.db")
    raw = {"store": {"path": path}, "providers": [{"id": "sim", "kind": "simulator"}],
           "models": [{"id": "bench", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
                       "routes": [{"provider": "sim", "model": "sim"}]}],
           "plans": [{"id": "pro", "window_5h_usd": 1e6, "window_7d_usd": 1e7}],
           "limits": {"key_rpm": 10**9, "key_tpm": 10**12, "account_rpm": 10**9,
                      "account_tpm": 10**12}}
    config = parse_config(raw, base_dir=tmp)
    db = store.open_database(path)
    account_id = fund(db, "pro" if funded_by == "window" else None)
    db.close()
    writer = store.Writer(path, batch_max=batch_max)
    services = build_services(config, writer, None)
    writer.start()
    req = c.Request(model="bench", messages=(c.Message("user", (c.TextPart("hello " * 100),)),),
                    max_tokens=1000)
    selection = select(services.catalog, req)
    usage = c.Usage(input_tokens=120, output_tokens=80)
    lat: list[float] = []

    async def run() -> None:
        limiter = trio.CapacityLimiter(concurrency)

        async def job(i: int) -> None:
            async with limiter:
                t0 = time.perf_counter()
                ctx = CallContext(request_id=f"r{i}", route="/v1/chat/completions",
                                  dialect="openai", account_id=account_id, key_id="key_bench")
                prep = Prepared(ctx, req, selection, 120)
                await services.admission.admit(prep)
                await services.admission.close(prep, usage, None)
                lat.append(time.perf_counter() - t0)

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(job, i)

    try:
        t0 = time.perf_counter()
        trio.run(run)
        dt = time.perf_counter() - t0
    finally:
        writer.close()
    check = store.open_database(path)
    assert store.check_invariants(check) == []
    check.close()
    return _figures(f"admission, {funded_by}, c={concurrency}, batch_max={batch_max}", n, dt,
                    lat)


def bench_history(tmp: str, history: int, n: int) -> dict:
    """Admission cost against a 7d window already holding `history` settled requests."""
    _, db = fresh_db(tmp, f"history-{history}")
    account_id = fund(db, "pro")
    now = time.time()
    with store.write_tx(db):
        rows = [(f"qhold_h{i}", account_id, "pro", f"h{i}", 10, 0, 0, "settled", 10, 0, 0, 0,
                 now - 6 * 86400 + i * (6 * 86400 / max(history, 1)), now, now)
                for i in range(history)]
        db.cursor().executemany(
            "INSERT INTO quota_hold (id, account_id, plan, request_id, amount_micros, "
            "input_tokens, output_tokens, state, charged_micros, overrun_micros, "
            "used_input_tokens, used_output_tokens, created_at, expires_at, closed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    lat: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        t1 = time.perf_counter()
        one_request(db, account_id, i, plan_windows(PLAN, time.time()), "pro")
        lat.append(time.perf_counter() - t1)
    dt = time.perf_counter() - t0
    db.close()
    return _figures(f"store, sync, window, {history} settled in 7d", n, dt, lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--json")
    args = ap.parse_args()
    n, conc = args.requests, args.concurrency
    results = []
    with tempfile.TemporaryDirectory(prefix="prism-bench-money-") as tmp:
        for funded_by in ("wallet", "window"):
            results.append(bench_sync(tmp, n, funded_by))
        for funded_by in ("wallet", "window"):
            for batch_max in (1, 64):
                results.append(bench_writer(tmp, n, 1, funded_by, batch_max))
                results.append(bench_writer(tmp, n, conc, funded_by, batch_max))
        for funded_by in ("wallet", "window"):
            for batch_max in (1, 64):
                results.append(bench_admission(tmp, n, conc, funded_by, batch_max))
        for history in (1_000, 10_000, 100_000):
            results.append(bench_history(tmp, history, min(n, 1000)))
    width = max(len(r["phase"]) for r in results)
    print(f"{'phase':<{width}}  {'us/req':>8}  {'settled/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}")
    for r in results:
        p50 = f"{r['p50_ms']:7.2f}" if "p50_ms" in r else " " * 7
        p99 = f"{r['p99_ms']:7.2f}" if "p99_ms" in r else " " * 7
        print(f"{r['phase']:<{width}}  {r['us_per_request']:8.0f}  {r['settled_per_s']:9.0f}  "
              f"{p50}  {p99}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
