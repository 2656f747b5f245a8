"""Gateway overhead benchmark: what Prism adds on top of the upstream it forwards to.

    python tests/bench/bench_gateway.py [--requests N] [--duration S] [--json out.json]

Not a pytest module (no ``test_`` prefix). One run starts, each in its OWN process so
nothing shares a GIL with anything else:

    simulator   ``python -m gateway.cli simulate --port 0`` (zero delay, OpenAI wire)
    gateway     ``python -m gateway.cli serve --config <tmp>/prism.toml --port 0``, one
                priced model routed to the simulator over HTTP (provider kind "openai")
    bare        this file with ``--_bare``: a raw ASGI app on hypercorn's trio worker that
                answers the simulator's own response body, captured once, verbatim
    load gen    this file with ``--_loadgen``: asyncio, raw keep-alive HTTP/1.1 sockets,
                used for the concurrency-32 throughput phases so the client is cheap
                (httpx spends more CPU per request than the bare server does)

The concurrency-1 latency and streaming phases run in this (parent) process with a
keep-alive ``httpx.Client``, alternating direct and gateway requests so drift (CPU
frequency, other load) hits both sides alike. Every child is started on 127.0.0.1 with
port 0 (the kernel picks a free port; the child prints it), dies with this process
(PR_SET_PDEATHSIG) and is stopped in a ``finally``. A SIGALRM watchdog bounds the run.

CPU seconds each process used per phase are read from /proc and reported per request:
on a machine with few cores the throughput ratio mixes gateway cost with the simulator
and load generator competing for CPU, while CPU-per-request is the gateway's own cost.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "bench-admin-token"
UPSTREAM_MODEL = "sim-small"
PUBLIC_MODEL = "bench-model"
PROMPT = "say: The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."
CONCURRENCY = 32
TARGETS = {"added_p50_ms": 1.0, "added_p99_ms": 3.0, "rps_ratio": 0.5}
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchTimeout(Exception):
    pass


def chat_body(model: str, stream: bool = False) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- child: bare ASGI app

def run_bare(body_file: str) -> None:
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    body = Path(body_file).read_bytes()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        while True:  # read the request body like any real handler must
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            if not msg.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def main() -> None:
        config = Config()  # the same settings the simulator serves with
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.loglevel = "WARNING"
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve(app, config, mode="asgi",
                                                                  task_status=task_status))
            print(f"bare listening on {binds[0]}", flush=True)

    trio.run(main)


# ---------------------------------------------------------------- child: load generator

async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; (status, server wants the connection closed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i >= 0:
        await reader.readexactly(int(lower[i + 17:lower.index(b"\r\n", i + 2)]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            await reader.readexactly(size + 2)
    else:
        await reader.read()
        return status, True
    return status, b"\r\nconnection: close" in lower


async def _loadgen(spec: dict) -> dict:
    host, port = spec["host"], spec["port"]
    body = spec["body"].encode()
    head = [f"POST {spec['path']} HTTP/1.1", f"Host: {host}:{port}",
            "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in spec["headers"].items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    start = time.perf_counter()
    measure_from = start + spec["warmup"]
    stop_at = measure_from + spec["duration"]
    lat: list[float] = []
    stats = {"ok": 0, "errors": 0, "total": 0}

    async def worker() -> None:
        conn = None
        while time.perf_counter() < stop_at:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            reader, writer = conn
            t0 = time.perf_counter()
            try:
                writer.write(request)
                status, close = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                status, close = 0, True  # dropped by the server: count it, reconnect
            t1 = time.perf_counter()
            stats["total"] += 1
            if measure_from <= t0 and t1 <= stop_at:
                stats["ok" if status == 200 else "errors"] += 1
                lat.append(t1 - t0)
            if close:
                writer.close()
                conn = None
        if conn is not None:
            conn[1].close()

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    lat.sort()
    return {"rps": stats["ok"] / spec["duration"], "ok": stats["ok"], "errors": stats["errors"],
            "sent_total": stats["total"],
            "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3,
            "loadgen_cpu_s": time.process_time() - cpu0}


def run_loadgen(spec_json: str) -> None:
    print(json.dumps(asyncio.run(_loadgen(json.loads(spec_json)))), flush=True)


# ---------------------------------------------------------------- parent: processes

def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def _die_with_parent() -> None:
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Children:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, argv: list[str], ready: str, env: dict | None = None,
              timeout: float = 30.0) -> str:
        """Start argv; wait for a stdout line containing `ready`; return that line."""
        out = self.tmp / f"{name}.out"
        with open(out, "wb") as fo, open(self.tmp / f"{name}.err", "wb") as fe:
            self.procs[name] = p = subprocess.Popen(
                argv, cwd=REPO, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in out.read_text(errors="replace").splitlines():
                if ready in line:
                    return line
            if p.poll() is not None:
                break
            time.sleep(0.05)
        err = (self.tmp / f"{name}.err").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not start (exit {p.poll()}):\n{err}")

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) each live child has used, all threads; for the
        gateway also its main (event loop) thread alone as "gateway.loop"."""
        out = {}
        for name, p in self.procs.items():
            if name == "py-spy":
                continue
            try:
                out[name] = _cpu_of(f"/proc/{p.pid}/stat")
                if name == "gateway":
                    out["gateway.loop"] = _cpu_of(f"/proc/{p.pid}/task/{p.pid}/stat")
            except (OSError, IndexError, ValueError):
                pass
        return out

    def stop_all(self) -> None:
        # py-spy first, while its target still lives; SIGINT makes it write its file.
        # Servers get SIGTERM: the gateway drains on it, and unlike SIGINT it is not
        # ignored when this script runs in the background of a non-interactive shell.
        for name, p in sorted(self.procs.items(), key=lambda kv: kv[0] != "py-spy"):
            if p.poll() is None:
                p.send_signal(signal.SIGINT if name == "py-spy" else signal.SIGTERM)
                if name == "py-spy":
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        pass
        for p in self.procs.values():
            try:
                p.wait(8)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _cpu_of(stat_path: str) -> float:
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _url_in(line: str) -> str:
    word = next(w for w in line.split() if w.startswith("http://"))
    return word.rstrip("/").removesuffix("/v1")


def gateway_toml(tmp: Path, sim_url: str) -> str:
    return f"""
[server]
host = "127.0.0.1"
port = 0
shutdown_grace = 2
[store]
path = "{tmp / 'prism.db'}"
sweep_interval = 3600
[control]
socket = "{tmp / 'prism.sock'}"
[bootstrap]
dev_key = false
[[providers]]
id = "up"
kind = "openai"
base_url = "{sim_url}/v1"
api_key_env = "PRISM_BENCH_UPSTREAM_KEY"
read_timeout = 30
[[models]]
id = "{PUBLIC_MODEL}"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
routes = [{{provider = "up", model = "{UPSTREAM_MODEL}"}}]
"""


def start_profiler(children: Children, out: str) -> None:
    """Attach `py-spy record --gil` to the gateway for the rest of the run: samples only
    while a thread holds the GIL, i.e. Python CPU time, not time parked in epoll."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(out).suffix, "flamegraph")
    log = children.tmp / "py-spy.out"
    with open(log, "wb") as fo:
        children.procs["py-spy"] = p = subprocess.Popen(
            [spy, "record", "--pid", str(children.pid("gateway")), "--gil", "--rate", "250",
             "--format", fmt, "--output", str(Path(out).resolve())],
            stdout=fo, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
    time.sleep(1.0)  # let it attach before the load starts
    if p.poll() is not None:
        raise RuntimeError(f"py-spy failed: {log.read_text(errors='replace')[-1000:]}")


# ---------------------------------------------------------------- parent: phases

def latency_phase(client, targets: dict, n: int, warmup: int, budget: float) -> dict:
    """Concurrency 1, alternating targets request by request. targets: name -> (url, body, headers)."""
    times: dict[str, list[float]] = {k: [] for k in targets}
    errors = {k: 0 for k in targets}
    deadline = time.monotonic() + budget
    for i in range(warmup + n):
        if time.monotonic() > deadline:
            break
        for name, (url, body, headers) in targets.items():
            t0 = time.perf_counter()
            r = client.post(url, content=body, headers=headers)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                errors[name] += 1
            elif i >= warmup:
                times[name].append(dt)
    return {k: _summary(v, errors[k]) for k, v in times.items()}


def stream_phase(client, targets: dict, n: int, warmup: int, budget: float) -> dict:
    ttfb: dict[str, list[float]] = {k: [] for k in targets}
    total: dict[str, list[float]] = {k: [] for k in targets}
    errors = {k: 0 for k in targets}
    deadline = time.monotonic() + budget
    for i in range(warmup + n):
        if time.monotonic() > deadline:
            break
        for name, (url, body, headers) in targets.items():
            t0 = time.perf_counter()
            first = None
            data = b""
            with client.stream("POST", url, content=body, headers=headers) as r:
                for chunk in r.iter_raw():
                    if first is None and chunk:
                        first = time.perf_counter() - t0
                    data += chunk
            dt = time.perf_counter() - t0
            if r.status_code != 200 or b"data: [DONE]" not in data or first is None:
                errors[name] += 1
            elif i >= warmup:
                ttfb[name].append(first)
                total[name].append(dt)
    return {k: {"ttfb": _summary(ttfb[k], errors[k]), "total": _summary(total[k], errors[k])}
            for k in targets}


def _summary(values: list[float], errors: int) -> dict:
    v = sorted(values)
    return {"n": len(v), "errors": errors, "mean_ms": (sum(v) / len(v) * 1e3) if v else float("nan"),
            **{f"p{p}_ms": pct(v, p) * 1e3 for p in (50, 90, 99)}}


def throughput(children: Children, url: str, path: str, body: bytes, headers: dict,
               duration: float, warmup: float) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    spec = {"host": host, "port": int(port), "path": path, "body": body.decode(),
            "headers": headers, "concurrency": CONCURRENCY, "duration": duration, "warmup": warmup}
    cpu0 = children.cpu()
    r = subprocess.run([sys.executable, __file__, "--_loadgen", json.dumps(spec)], cwd=REPO,
                       capture_output=True, timeout=duration + warmup + 60, text=True,
                       preexec_fn=_die_with_parent)
    if r.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{r.stderr[-2000:]}")
    out = json.loads(r.stdout)
    cpu1 = children.cpu()
    # CPU counted over warm-up + window, spread over the requests of that whole span.
    served = max(1, out["ok"] * (duration + warmup) / duration)
    out["cpu_ms_per_req"] = {k: (cpu1[k] - cpu0.get(k, cpu1[k])) / served * 1e3 for k in cpu1}
    out["cpu_ms_per_req"]["loadgen"] = out.pop("loadgen_cpu_s") / served * 1e3
    return out


# ---------------------------------------------------------------- parent: report

def _fmt(x: float) -> str:
    return "   n/a" if x != x else f"{x:6.2f}"


def report(res: dict) -> None:
    lat, st, tp = res["latency"], res["streaming"], res["throughput"]
    print("\n== concurrency 1, non-streaming (ms) ==")
    print(f"{'':10} {'n':>6} {'p50':>6} {'p90':>6} {'p99':>6} {'mean':>6} {'errors':>6}")
    for name in ("direct", "gateway"):
        s = lat[name]
        print(f"{name:10} {s['n']:6d} {_fmt(s['p50_ms'])} {_fmt(s['p90_ms'])} "
              f"{_fmt(s['p99_ms'])} {_fmt(s['mean_ms'])} {s['errors']:6d}")
    print(f"{'added':10} {'':6} {_fmt(res['added_p50_ms'])} {'':6} {_fmt(res['added_p99_ms'])}")
    print(f"first gateway chat request after start-up: {res['gateway_first_request_ms']:.0f} ms")
    c1 = res["cpu_ms_per_req_c1"]
    print(f"CPU per request at c=1: gateway {c1['gateway']:.2f} ms (event-loop thread "
          f"{c1['gateway.loop']:.2f}, store writer and other threads "
          f"{c1['gateway'] - c1['gateway.loop']:.2f}); simulator {c1['simulator']:.2f} ms")
    print("\n== concurrency 1, streaming (ms) ==")
    print(f"{'':10} {'n':>6} {'ttfb50':>6} {'ttfb99':>6} {'tot50':>6} {'tot99':>6} {'errors':>6}")
    for name in ("direct", "gateway"):
        t, a = st[name]["ttfb"], st[name]["total"]
        print(f"{name:10} {t['n']:6d} {_fmt(t['p50_ms'])} {_fmt(t['p99_ms'])} "
              f"{_fmt(a['p50_ms'])} {_fmt(a['p99_ms'])} {t['errors']:6d}")
    print(f"\n== concurrency {CONCURRENCY}, throughput ==")
    print(f"{'':10} {'rps':>8} {'p50ms':>7} {'p99ms':>7} {'errors':>6}  CPU ms/request per process")
    for name in ("bare", "simulator", "gateway"):
        s = tp[name]
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in s["cpu_ms_per_req"].items() if v >= 0.02)
        print(f"{name:10} {s['rps']:8.0f} {s['p50_ms']:7.2f} {s['p99_ms']:7.2f} {s['errors']:6d}  {cpu}")
    print(f"gateway/bare = {res['rps_ratio']:.2f}; the gateway's event-loop thread would saturate "
          f"a core at ~{res['gateway_rps_ceiling']:.0f} rps; {os.cpu_count()} CPUs on this machine")
    print(f"1-minute load average: {res['loadavg_start']:.2f} at start, {res['loadavg_end']:.2f} at "
          f"end (includes this benchmark; well above it means other work competed for CPU)")
    print("\n== targets ==")
    for name, ok, text in res["verdicts"]:
        print(f"[{'MET' if ok else 'MISSED'}] {name}: {text}")


# ---------------------------------------------------------------- parent: main

def bench(args) -> dict:
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="prism-bench-"))
    children = Children(tmp)
    try:
        py = sys.executable
        sim = _url_in(children.spawn("simulator", [py, "-m", "gateway.cli", "simulate", "--host",
                                                   "127.0.0.1", "--port", "0"], "listening on"))
        direct_body = chat_body(UPSTREAM_MODEL)
        up_headers = {"authorization": "Bearer sk-upstream-bench"}
        with httpx.Client(timeout=30) as c:
            captured = c.post(f"{sim}/v1/chat/completions", content=direct_body, headers=up_headers)
            captured.raise_for_status()
        (tmp / "body.json").write_bytes(captured.content)
        bare = _url_in(children.spawn("bare", [py, __file__, "--_bare", str(tmp / "body.json")],
                                      "listening on"))
        (tmp / "prism.toml").write_text(gateway_toml(tmp, sim))
        gw_argv = [py, "-m", "gateway.cli", "serve", "--config", str(tmp / "prism.toml"), "--port", "0"]
        gw = _url_in(children.spawn("gateway", gw_argv, "serving on", env={
            "PRISM_ADMIN_TOKEN": ADMIN_TOKEN, "PRISM_BENCH_UPSTREAM_KEY": "sk-upstream-bench"}))
        with httpx.Client(timeout=30) as c:
            r = c.post(f"{gw}/-/keys", json={"name": "bench", "credits_usd": 1_000_000},
                       headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
            if r.status_code != 201:
                raise RuntimeError(f"key creation failed: {r.status_code} {r.text}")
            key = r.json()["key"]
        gw_headers = {"authorization": f"Bearer {key}"}
        if args.profile:
            start_profiler(children, args.profile)
        print(f"processes: simulator pid {children.pid('simulator')} {sim}, gateway pid "
              f"{children.pid('gateway')} {gw}, bare pid {children.pid('bare')} {bare}, "
              f"latency client pid {os.getpid()}; throughput load generator spawned per phase",
              flush=True)

        path = "/v1/chat/completions"
        gw_body = chat_body(PUBLIC_MODEL)
        res: dict = {"loadavg_start": _loadavg(), "config": {
            "requests": args.requests, "warmup": args.warmup, "stream_requests": args.stream_requests,
            "duration_s": args.duration, "concurrency": CONCURRENCY, "cpus": os.cpu_count()}}
        with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=4)) as client:
            # The very first chat request: shows lazy start-up work (tokenizer tables,
            # upstream connection) that a client pays for after every restart.
            t0 = time.perf_counter()
            client.post(gw + path, content=gw_body, headers=gw_headers).raise_for_status()
            res["gateway_first_request_ms"] = (time.perf_counter() - t0) * 1e3
            print(f"latency: {args.requests} requests each after {args.warmup} warm-up ...", flush=True)
            cpu0 = children.cpu()
            res["latency"] = latency_phase(client, {
                "direct": (sim + path, direct_body, up_headers),
                "gateway": (gw + path, gw_body, gw_headers)}, args.requests, args.warmup, budget=75)
            cpu1 = children.cpu()
            n_gw = max(1, res["latency"]["gateway"]["n"] + args.warmup)
            res["cpu_ms_per_req_c1"] = {
                k: (cpu1[k] - cpu0[k]) / n_gw * 1e3 for k in ("gateway", "gateway.loop")}
            # the simulator served the direct requests and the gateway's alike
            res["cpu_ms_per_req_c1"]["simulator"] = (cpu1["simulator"] - cpu0["simulator"]) / (2 * n_gw) * 1e3
            print(f"streaming: {args.stream_requests} requests each ...", flush=True)
            res["streaming"] = stream_phase(client, {
                "direct": (sim + path, chat_body(UPSTREAM_MODEL, True), up_headers),
                "gateway": (gw + path, chat_body(PUBLIC_MODEL, True), gw_headers)},
                args.stream_requests, 20, budget=30)
        res["throughput"] = {}
        for name, url, body, headers in (("bare", bare, direct_body, up_headers),
                                         ("simulator", sim, direct_body, up_headers),
                                         ("gateway", gw, gw_body, gw_headers)):
            print(f"throughput: {name}, {CONCURRENCY} connections for {args.duration:g} s ...", flush=True)
            res["throughput"][name] = throughput(children, url, path, body, headers,
                                                 args.duration, warmup=1.0)
        lat, tp = res["latency"], res["throughput"]
        res["added_p50_ms"] = lat["gateway"]["p50_ms"] - lat["direct"]["p50_ms"]
        res["added_p99_ms"] = lat["gateway"]["p99_ms"] - lat["direct"]["p99_ms"]
        res["rps_ratio"] = tp["gateway"]["rps"] / tp["bare"]["rps"] if tp["bare"]["rps"] else 0.0
        # One event-loop thread cannot use more than one core: its CPU per request bounds rps.
        res["gateway_rps_ceiling"] = 1e3 / max(1e-9, tp["gateway"]["cpu_ms_per_req"]["gateway.loop"])
        res["verdicts"] = [
            ("added p50 <= 1 ms", res["added_p50_ms"] <= TARGETS["added_p50_ms"],
             f"{res['added_p50_ms']:.2f} ms"),
            ("added p99 <= 3 ms", res["added_p99_ms"] <= TARGETS["added_p99_ms"],
             f"{res['added_p99_ms']:.2f} ms"),
            ("gateway rps >= 0.5 x bare", res["rps_ratio"] >= TARGETS["rps_ratio"],
             f"{tp['gateway']['rps']:.0f} vs {tp['bare']['rps']:.0f} rps = {res['rps_ratio']:.2f} x"),
        ]
        res["loadavg_end"] = _loadavg()
        res["gateway_requests_total"] = (
            args.warmup + lat["gateway"]["n"] + lat["gateway"]["errors"] + 20
            + res["streaming"]["gateway"]["total"]["n"] + tp["gateway"]["sent_total"])
        failures = sum(s["errors"] for s in lat.values()) + sum(s["errors"] for s in tp.values())
        if failures:
            print(f"WARNING: {failures} non-200 responses; see {tmp}/*.err", file=sys.stderr)
        return res
    finally:
        children.stop_all()
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=2000, help="measured requests per target at c=1")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--stream-requests", type=int, default=300)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per throughput phase")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--profile", help="attach `py-spy record --gil` to the gateway for the whole "
                                     "run, writing this file (.json speedscope, .txt raw "
                                     "collapsed stacks, else flamegraph .svg); sampling pauses the "
                                     "gateway, so its timings are not benchmark figures")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, db)")
    p.add_argument("--budget", type=float, default=240.0, help="hard wall-clock limit, seconds")
    p.add_argument("--_bare", help=argparse.SUPPRESS)
    p.add_argument("--_loadgen", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._bare:
        run_bare(args._bare)
        return 0
    if args._loadgen:
        run_loadgen(args._loadgen)
        return 0

    def alarm(signum, frame):
        raise BenchTimeout(f"benchmark exceeded its {args.budget:g} s budget")
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(int(args.budget))
    try:
        res = bench(args)
    finally:
        signal.alarm(0)
    report(res)
    if args.profile:
        print(f"\nprofile written to {args.profile}; the gateway served about "
              f"{res['gateway_requests_total']} requests while profiled (all phases)")
        if args.profile.endswith(".txt"):
            print(f"  python tests/bench/summarize_profile.py {args.profile} --rate 250 "
                  f"--requests {res['gateway_requests_total']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
        print(f"\nwrote {args.json}")
    return 0 if all(ok for _, ok, _ in res["verdicts"]) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())
