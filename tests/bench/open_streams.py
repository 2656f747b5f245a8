"""Many concurrent open streams through one gateway: resident memory and event-loop lag.

    python tests/bench/open_streams.py [--streams 10000] [--hold 60] [--prism TREE]
        [--gateway prism|portkey]

nginx serves a chat stream slowly (limit_rate: the fixed SSE body, padded with SSE
comments, trickles out over minutes), so every stream stays open for the whole hold.
An asyncio client on core 1 opens `--streams` keep-alive connections to the gateway
(pinned to core 0), each POSTing a streaming chat request and reading what arrives.
Every second, while the streams are held, it samples the gateway's RSS and the latency
of a cheap probe (GET /healthz on Prism, GET / on Portkey): with the loop busy relaying
thousands of streams, that latency is the event-loop lag a new request would see.
Reports the number of streams that got their first byte, RSS at peak, and the probe's
p50/p99/max. A script, not a test; it bounds itself by --hold plus start-up.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

GATEWAY_CORE, CLIENT_CORE = 0, 1


async def _one_stream(host: str, port: int, request: bytes, started: list, stop: asyncio.Event,
                      errors: list) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        errors.append(type(exc).__name__)
        return
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            errors.append(head[9:12].decode())
            return
        started.append(1)
        while not stop.is_set():
            if not await reader.read(65536):
                return
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        errors.append(type(exc).__name__)
    finally:
        writer.close()


async def _probe(host: str, port: int, path: str) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    i = head.find(b"content-length:")
    if i >= 0:
        await reader.readexactly(int(head[i + 15:head.index(b"\r\n", i)]))
    writer.close()
    return (time.perf_counter() - t0) * 1e3


async def run(url: str, path: str, body: bytes, headers: dict, probe_path: str, n: int,
              hold: float, rss) -> dict:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    started: list = []
    errors: list = []
    stop = asyncio.Event()
    tasks = []
    t0 = time.monotonic()
    for i in range(n):
        tasks.append(asyncio.create_task(_one_stream(host, int(port), request, started, stop,
                                                     errors)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)   # ramp up instead of one SYN flood
    ramp_s = time.monotonic() - t0
    lags, rss_mb = [], []
    end = time.monotonic() + hold
    while time.monotonic() < end:
        try:
            lags.append(await asyncio.wait_for(_probe(host, int(port), probe_path), 30))
        except (OSError, asyncio.TimeoutError):
            lags.append(float("inf"))
        rss_mb.append(rss())
        await asyncio.sleep(1.0)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lags.sort()
    pick = lambda p: lags[min(len(lags) - 1, int(p / 100 * len(lags)))]   # noqa: E731
    return {"streams": n, "open": len(started), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5], "ramp_s": ramp_s,
            "rss_peak_mb": max(rss_mb), "rss_end_mb": rss_mb[-1],
            "lag_p50_ms": pick(50), "lag_p99_ms": pick(99), "lag_max_ms": lags[-1]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--hold", type=float, default=60.0)
    p.add_argument("--gateway", choices=("prism", "portkey"), default="prism")
    p.add_argument("--prism", default=str(peers.REPO), help="the Prism source tree")
    p.add_argument("--rate", type=int, default=32, help="nginx limit_rate, bytes/s per stream")
    p.add_argument("--tools", type=Path, default=Path(os.environ.get(
        "PRISM_BENCH_TOOLS", Path.home() / ".cache/prism-bench")))
    args = p.parse_args()
    peers.ensure_apt("nginx")
    peers.raise_fd_limit()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {CLIENT_CORE})
    tmp = Path(tempfile.mkdtemp(prefix="prism-streams-"))
    fleet = peers.Fleet(tmp)
    try:
        upstream = peers.start_nginx(fleet, CLIENT_CORE, slow_rate=args.rate)
        if args.gateway == "prism":
            url, headers = peers.start_prism(fleet, "prism", Path(args.prism).resolve(), upstream,
                                             GATEWAY_CORE, max_connections=args.streams + 100)
            body, probe = peers.chat_body(peers.SLOW_MODEL, True), "/healthz"
        else:
            url, _, headers = peers.start_portkey(fleet, args.tools, upstream, GATEWAY_CORE)
            headers = {**headers, "x-portkey-custom-host": upstream + "/slow/v1"}
            body, probe = peers.chat_body(peers.UPSTREAM_MODEL, True), "/"
        idle = fleet.rss_mb(args.gateway)
        res = asyncio.run(run(url, "/v1/chat/completions", body, headers, probe, args.streams,
                              args.hold, lambda: fleet.rss_mb(args.gateway)))
    finally:
        fleet.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.gateway}: {res['open']}/{res['streams']} streams open (ramp {res['ramp_s']:.1f} s, "
          f"{res['errors']} errors {res['error_kinds']}); RSS idle {idle:.0f} MB, peak "
          f"{res['rss_peak_mb']:.0f} MB, end {res['rss_end_mb']:.0f} MB; probe latency (loop lag) "
          f"p50 {res['lag_p50_ms']:.1f} ms, p99 {res['lag_p99_ms']:.1f} ms, max "
          f"{res['lag_max_ms']:.1f} ms over {args.hold:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
