"""Scale-out benchmark: requests per second with 1, 2 and 4 workers, on SQLite and on
PostgreSQL, against the simulator over HTTP; and the store's own cost per request.

    python tests/bench/bench_scale.py [--duration S] [--workers 1,2,4]

Not a pytest module. Starts `prism simulate` and `prism serve --workers N` as child
processes, drives them with bench_gateway's raw-socket load generator (concurrency
32, non-streaming chat, 8 tokens out), then times reserve + settle-with-log through
the store Writer (32 at a time) on each engine. Needs PostgreSQL as in tests/pgtest.py.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import pgtest  # noqa: E402
import store  # noqa: E402
from scale.nodes import Node, to_toml  # noqa: E402
import harness  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator() -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "simulate", "--port", str(port)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/_sim/stats", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("simulator did not start")


def gateway(tmp: Path, sim_url: str, store_url: str, workers: int) -> Node:
    cfg = harness.gateway_config(tmp, sim_url)
    cfg["store"]["url"] = store_url
    cfg["server"]["workers"] = workers
    path = tmp / "prism.toml"
    path.write_text(to_toml(cfg), encoding="utf-8")
    return Node(path)


def load(url: str, key: str, duration: float) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = json.dumps({"model": "prism-mini", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "say: hello there"}]})
    spec = {"host": host, "port": int(port), "path": "/v1/chat/completions", "body": body,
            "headers": {"Authorization": f"Bearer {key}"}, "concurrency": 32,
            "duration": duration, "warmup": 2.0}
    r = subprocess.run([sys.executable, str(REPO / "tests/bench/bench_gateway.py"),
                        "--_loadgen", json.dumps(spec)], cwd=REPO, capture_output=True,
                       text=True, timeout=duration + 120)
    return json.loads(r.stdout)


async def store_cost(target: str, requests: int = 2000) -> dict:
    threads = 4 if target.startswith("postgresql") else 1
    writer = store.Writer(target, threads=threads)
    writer.start()
    try:
        account, _, _ = await writer.call(store.create_account_with_key, "b", 10**12)
        limiter = trio.CapacityLimiter(32)

        async def one(i: int) -> None:
            async with limiter:
                hold = await writer.call(store.reserve, account.id, f"b{i}", 5000, 60)
                await writer.call(store.settle, hold.id, 1234, log=dict(
                    route="/v1/chat/completions", dialect="openai", status=200, model="m",
                    tokens_in=10, tokens_out=8))

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for i in range(requests):
                nursery.start_soon(one, i)
        wall = time.perf_counter() - t0
    finally:
        writer.close()
    return {"requests_per_s": requests / wall, "ms_per_request": wall / requests * 1e3}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--workers", default="1,2,4")
    args = p.parse_args()
    os.environ.setdefault("PRISM_TEST_UPSTREAM_KEY", "sk-bench")
    os.environ["PRISM_ADMIN_TOKEN"] = harness.ADMIN_TOKEN
    database = pgtest.create_database()
    sim, sim_url = start_simulator()
    results = []
    try:
        import tempfile
        for engine in ("sqlite", "postgresql"):
            for n in [int(x) for x in args.workers.split(",")]:
                tmp = Path(tempfile.mkdtemp(prefix="prism-bench-"))
                if engine == "sqlite":
                    url, schema = "sqlite:///" + str(tmp / "prism.db"), None
                else:
                    schema, url = pgtest.fresh_schema(database)
                node = gateway(tmp, sim_url, url, n)
                try:
                    key = node.create_key(credits_usd=100000.0)["key"]
                    out = load(node.url, key, args.duration)
                finally:
                    node.stop()
                    if schema:
                        pgtest.drop_schema(database, schema)
                results.append({"engine": engine, "workers": n, "rps": round(out["rps"], 1),
                                "p50_ms": round(out["p50_ms"], 1),
                                "p99_ms": round(out["p99_ms"], 1), "errors": out["errors"]})
                print(json.dumps(results[-1]), flush=True)
        for engine in ("sqlite", "postgresql"):
            tmp = Path(tempfile.mkdtemp(prefix="prism-bench-"))
            if engine == "sqlite":
                target, schema = str(tmp / "prism.db"), None
            else:
                schema, target = pgtest.fresh_schema(database)
            cost = trio.run(store_cost, target)
            print(json.dumps({"engine": engine, "store": {k: round(v, 3) for k, v in cost.items()}}),
                  flush=True)
    finally:
        sim.terminate()
        pgtest.drop_database(database)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
