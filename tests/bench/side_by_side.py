"""Side-by-side gateway benchmark: Prism (one or more source trees), Portkey, LiteLLM.

    python tests/bench/side_by_side.py [--prism NAME=TREE ...] [--no-portkey] [--no-litellm]
        [--rounds 2] [--duration 8] [--json out.json]

nginx (one worker) serves a fixed chat completion and a fixed SSE stream; each gateway
forwards to it and is pinned to core 0 with taskset while nginx and wrk share core 1.
For every gateway, in two interleaved rounds (A B C A B C, so drift hits all alike):
wrk -t1 -c1 for added latency (gateway p50 minus nginx's own p50), wrk -t1 -c32 for
requests per second, both for the plain completion and for the stream; the resident
memory of the gateway's process tree is read after its load and, for Prism, after a few
streams without upstream usage (billed by counting the delivered text). Prints the table, then each
gateway's ratios to the first Prism tree and to Portkey. A script, not a test: numbers
from a shared machine compare only within one run.

Comparing a baseline: `git worktree add /tmp/base <commit>` then
`--prism base=/tmp/base --prism branch=.`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

GATEWAY_CORE, LOAD_CORE = 0, 1
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: bytes, headers: dict, conns: int, seconds: float, tmp: Path) -> dict:
    script = tmp / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
            "-s", str(script), url]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", str(LOAD_CORE), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*?timeout (\d+)", out)
    if m is None or p50 is None:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    return {"rps": float(m.group(1)),
            "p50_ms": float(p50.group(1)) * _UNIT[p50.group(2)],
            "p99_ms": float(p99.group(1)) * _UNIT[p99.group(2)] if p99 else float("nan"),
            "errors": (int(bad.group(1)) if bad else 0) + (int(errs.group(1)) if errs else 0)}


def measure(target: dict, args, tmp: Path, cpu) -> dict:
    """cpu(): the gateway's CPU seconds so far. Its CPU per request under c=32 is the
    figure least disturbed by other work on a shared machine (requests per CPU-second
    is throughput per core even when the core was not all ours)."""
    url = target["url"] + "/v1/chat/completions"
    r = {}
    for kind, body, headers in (("json", target["body"], target["headers"]),
                                ("sse", target["stream_body"], target["stream_headers"])):
        wrk(url, body, headers, 8, 2, tmp)   # warm-up: connections, caches, JIT
        r[f"{kind}_c1"] = wrk(url, body, headers, 1, args.duration, tmp)
        before = cpu()
        r[f"{kind}_c32"] = res = wrk(url, body, headers, 32, args.duration, tmp)
        res["cpu_ms"] = (cpu() - before) * 1e3 / max(1.0, res["rps"] * args.duration)
    return r


def targets(fleet: peers.Fleet, upstream: str, args) -> dict[str, dict]:
    out: dict[str, dict] = {"nginx": {
        "url": upstream, "body": peers.chat_body(peers.UPSTREAM_MODEL), "headers": {},
        "stream_body": peers.chat_body(peers.UPSTREAM_MODEL, True), "stream_headers": {}}}
    for spec in args.prism or [f"prism={peers.REPO}"]:
        name, _, tree = spec.partition("=")
        url, headers = peers.start_prism(fleet, name, Path(tree).resolve(), upstream, GATEWAY_CORE)
        out[name] = {"url": url, "headers": headers, "stream_headers": headers, "prism": True,
                     "body": peers.chat_body(peers.PUBLIC_MODEL),
                     "stream_body": peers.chat_body(peers.STREAM_MODEL, True)}
    if not args.no_portkey:
        url, h_json, h_sse = peers.start_portkey(fleet, args.tools, upstream, GATEWAY_CORE)
        out["portkey"] = {"url": url, "headers": h_json, "stream_headers": h_sse,
                          "body": peers.chat_body(peers.UPSTREAM_MODEL),
                          "stream_body": peers.chat_body(peers.UPSTREAM_MODEL, True)}
    if not args.no_litellm:
        url, headers = peers.start_litellm(fleet, args.tools, upstream, GATEWAY_CORE)
        out["litellm"] = {"url": url, "headers": headers, "stream_headers": headers,
                          "body": peers.chat_body(peers.PUBLIC_MODEL),
                          "stream_body": peers.chat_body(peers.STREAM_MODEL, True)}
    return out


def _best(rounds: list[dict], key: str, field: str) -> float:
    """The best round: on a shared machine other work only ever slows a round down."""
    values = [r[key].get(field, float("nan")) for r in rounds]
    return max(values) if field == "rps" else min(values)


def summarize(results: dict[str, list[dict]], rss: dict[str, float]) -> dict[str, dict]:
    base = results["nginx"]
    rows = {}
    for name, rounds in results.items():
        row = {"rps": _best(rounds, "json_c32", "rps"), "sse_rps": _best(rounds, "sse_c32", "rps"),
               "p50": _best(rounds, "json_c1", "p50_ms"), "sse_p50": _best(rounds, "sse_c1", "p50_ms"),
               "errors": sum(r[k]["errors"] for r in rounds for k in r if k.startswith("json")),
               "sse_errors": sum(r[k]["errors"] for r in rounds for k in r if k.startswith("sse")),
               "rss": rss.get(name)}
        if name != "nginx":
            row["cpu_ms"] = _best(rounds, "json_c32", "cpu_ms")
            row["sse_cpu_ms"] = _best(rounds, "sse_c32", "cpu_ms")
        if name != "nginx":
            row["added"] = row["p50"] - _best(base, "json_c1", "p50_ms")
            row["sse_added"] = row["sse_p50"] - _best(base, "sse_c1", "p50_ms")
        rows[name] = row
    return rows


def report(rows: dict[str, dict], rounds: int) -> None:
    print(f"\n== best of {rounds} interleaved rounds; gateways on core {GATEWAY_CORE}, "
          f"nginx and wrk on core {LOAD_CORE} ==")
    print("| gateway | added p50 c=1 | req/s c=32 | CPU ms/req | stream added p50 c=1 "
          "| streams/s c=32 | CPU ms/stream | RSS after load | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        added = f"{r['p50']:.2f} ms (itself)" if name == "nginx" else f"+{r['added']:.2f} ms"
        sse = f"{r['sse_p50']:.2f} ms (itself)" if name == "nginx" else f"+{r['sse_added']:.2f} ms"
        rss = "" if r["rss"] is None else f"{r['rss']:.0f} MB"
        sse_rps = f"{r['sse_rps']:.0f}"
        if r["sse_errors"]:   # wrk counts failed answers as requests: the rate means nothing
            sse, sse_rps = "failed", f"({r['sse_errors']} non-2xx)"
        cpu = f"{r['cpu_ms']:.2f}" if "cpu_ms" in r else ""
        sse_cpu = f"{r['sse_cpu_ms']:.2f}" if "cpu_ms" in r and not r["sse_errors"] else ""
        print(f"| {name} | {added} | {r['rps']:.0f} | {cpu} | {sse} | {sse_rps} | {sse_cpu} "
              f"| {rss} | {r['errors']} |")
    gws = [n for n in rows if n != "nginx"]
    for ref in dict.fromkeys([gws[0], "portkey"]):
        if ref not in rows:
            continue
        print(f"\nratios to {ref} (throughput x, added latency x, RSS x):")
        for name in gws:
            if name == ref:
                continue
            a, b = rows[name], rows[ref]
            rss = (f"{a['rss'] / b['rss']:.2f}" if a["rss"] and b["rss"] else "n/a")
            sse = ("n/a" if a["sse_errors"] or b["sse_errors"]
                   else f"{a['sse_rps'] / b['sse_rps']:.2f}x")
            print(f"  {name:10} rps {a['rps'] / b['rps']:.2f}x  requests per CPU-second "
                  f"{b['cpu_ms'] / a['cpu_ms']:.2f}x  stream rps {sse}  added p50 "
                  f"{a['added'] / max(b['added'], 1e-6):.2f}x  RSS {rss}x")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prism", action="append", metavar="NAME=TREE",
                   help="a Prism source tree to run (repeatable); default: this checkout")
    p.add_argument("--no-portkey", action="store_true")
    p.add_argument("--no-litellm", action="store_true")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per wrk phase")
    p.add_argument("--tools", type=Path, default=Path(os.environ.get(
        "PRISM_BENCH_TOOLS", Path.home() / ".cache/prism-bench")))
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args()
    peers.ensure_apt("wrk", "nginx")
    peers.raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="prism-sbs-"))
    fleet = peers.Fleet(tmp)
    try:
        upstream = peers.start_nginx(fleet, LOAD_CORE)
        tg = targets(fleet, upstream, args)
        results: dict[str, list[dict]] = {name: [] for name in tg}
        rss: dict[str, float] = {}
        for rnd in range(args.rounds):
            for name, t in tg.items():
                if name == "nginx":
                    t = {**t, "url": upstream}
                    r = measure_nginx(t, args, tmp)
                else:
                    r = measure(t, args, tmp, lambda n=name: fleet.cpu_s(n))
                    if t.get("prism"):
                        peers.estimated_streams(t["url"], t["headers"])
                    rss[name] = fleet.rss_mb(name)
                results[name].append(r)
                print(f"round {rnd + 1} {name}: " + ", ".join(
                    f"{k} {v['rps']:.0f}/s p50 {v['p50_ms']:.2f}ms" for k, v in r.items()),
                    flush=True)
        rows = summarize(results, rss)
        report(rows, args.rounds)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "raw": results}, indent=2))
    finally:
        fleet.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def measure_nginx(t: dict, args, tmp: Path) -> dict:
    r = {}
    for kind, url, body in (("json", t["url"] + "/v1/chat/completions", t["body"]),
                            ("sse", t["url"] + "/sse/v1/chat/completions", t["stream_body"])):
        r[f"{kind}_c1"] = wrk(url, body, {}, 1, args.duration, tmp)
        r[f"{kind}_c32"] = wrk(url, body, {}, 32, args.duration, tmp)
    return r


if __name__ == "__main__":
    raise SystemExit(main())
