"""Inference overhead benchmark: what Prism adds to embeddings and transcription.

    python tests/bench/bench_inference.py [--requests N] [--json out.json]

Not a pytest module. Starts the HTTP simulator and a gateway (each its own process,
reusing bench_gateway's Children), then alternates, at concurrency 1 over keep-alive
connections, the same call made directly to the simulator and through the gateway:

    embeddings      a batch of 64 short texts (OpenAI /v1/embeddings; model priced per token)
    transcription   a 10 s WAV made by the simulator (multipart /v1/audio/transcriptions;
                    priced per minute, its length read from the file)

Added latency = gateway percentile minus direct percentile.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_gateway import ADMIN_TOKEN, Children, _url_in, gateway_toml, pct  # noqa: E402

TEXTS = [f"short text number {i} about topic {i % 7}" for i in range(64)]


def toml(tmp: Path, sim: str) -> str:
    """bench_gateway's config (provider "up": the simulator over HTTP) plus one model
    per measured operation."""
    return gateway_toml(tmp, sim) + """
[[models]]
id = "emb"
input_usd_per_mtok = 0.02
capabilities = ["embeddings"]
routes = [{provider = "up", model = "sim-embed"}]
[[models]]
id = "stt"
audio_usd_per_minute = 0.006
capabilities = ["transcription"]
routes = [{provider = "up", model = "sim-whisper"}]
"""


def _phase(client, calls: dict, n: int, warmup: int) -> dict:
    times = {k: [] for k in calls}
    for i in range(warmup + n):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            r = fn(client)
            dt = (time.perf_counter() - t0) * 1e3
            if r.status_code != 200:
                raise RuntimeError(f"{name}: {r.status_code} {r.text[:300]}")
            if i >= warmup:
                times[name].append(dt)
    out = {}
    for name, vals in times.items():
        vals.sort()
        out[name] = {"n": len(vals), "p50_ms": pct(vals, 50), "p90_ms": pct(vals, 90), "p99_ms": pct(vals, 99)}
    out["added_p50_ms"] = out["gateway"]["p50_ms"] - out["direct"]["p50_ms"]
    out["added_p90_ms"] = out["gateway"]["p90_ms"] - out["direct"]["p90_ms"]
    return out


def bench(args) -> dict:
    import httpx

    from gateway.simulator import sim_audio
    tmp = Path(tempfile.mkdtemp(prefix="prism-bench-inf-"))
    children = Children(tmp)
    try:
        py = sys.executable
        sim = _url_in(children.spawn("simulator", [py, "-m", "gateway.cli", "simulate", "--host",
                                                   "127.0.0.1", "--port", "0"], "listening on"))
        (tmp / "prism.toml").write_text(toml(tmp, sim))
        gw = _url_in(children.spawn("gateway", [py, "-m", "gateway.cli", "serve", "--config",
                                                str(tmp / "prism.toml"), "--port", "0"], "serving on", env={
            "PRISM_ADMIN_TOKEN": ADMIN_TOKEN, "PRISM_BENCH_UPSTREAM_KEY": "sk-upstream-bench"}))
        with httpx.Client(timeout=30) as c:
            key = c.post(f"{gw}/-/keys", json={"name": "bench", "credits_usd": 1_000_000},
                         headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()["key"]
        up = {"authorization": "Bearer sk-upstream-bench"}
        mine = {"authorization": f"Bearer {key}"}
        speech = " ".join(["word"] * 25)                 # 25 words: 10 s of audio
        wav = sim_audio.wav(speech)
        assert abs(sim_audio.speech_seconds(speech) - 10.0) < 1e-9
        res: dict = {"config": {"requests": args.requests, "batch": len(TEXTS), "audio_seconds": 10.0,
                                "wav_bytes": len(wav)}}
        with httpx.Client(timeout=60) as client:
            res["embeddings"] = _phase(client, {
                "direct": lambda c: c.post(sim + "/v1/embeddings", headers=up,
                                           json={"model": "sim-embed", "input": TEXTS}),
                "gateway": lambda c: c.post(gw + "/v1/embeddings", headers=mine,
                                            json={"model": "emb", "input": TEXTS, "encoding_format": "float"}),
            }, args.requests, 5)
            files = {"file": ("ten.wav", wav, "audio/wav")}
            res["transcription"] = _phase(client, {
                "direct": lambda c: c.post(sim + "/v1/audio/transcriptions", headers=up, files=files,
                                           data={"model": "sim-whisper", "response_format": "verbose_json"}),
                "gateway": lambda c: c.post(gw + "/v1/audio/transcriptions", headers=mine, files=files,
                                            data={"model": "stt", "response_format": "verbose_json"}),
            }, max(10, args.requests // 2), 3)
        return res
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    res = bench(args)
    for op in ("embeddings", "transcription"):
        r = res[op]
        print(f"{op:14s} direct p50 {r['direct']['p50_ms']:.2f} ms, gateway p50 {r['gateway']['p50_ms']:.2f} ms, "
              f"added p50 {r['added_p50_ms']:.2f} ms, added p90 {r['added_p90_ms']:.2f} ms (n={r['gateway']['n']})")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
