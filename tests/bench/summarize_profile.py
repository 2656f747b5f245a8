"""Fold a py-spy raw profile of the gateway into per-request buckets.

    python tests/bench/bench_gateway.py --profile /tmp/gw.txt
    python tests/bench/summarize_profile.py /tmp/gw.txt --rate 250 --requests N

Each sample (collapsed stack, ``--gil`` so only GIL-holding time counts) goes to the
bucket of the DEEPEST frame that matches a marker below, so "httpx" means time spent
inside the upstream client, not in the gateway code that called it. With --requests
(how many requests the gateway served while profiled) buckets are shown as
milliseconds of CPU per request. Not a pytest module.
"""
from __future__ import annotations

import argparse
import collections
import re

# (substring of a frame, bucket). The deepest matching frame of a stack wins; within
# one frame, the later marker wins.
MARKERS = (
    ("Writer._serve", "store writer thread (peewee + sqlite, GIL-held part)"),
    ("hypercorn/", "hypercorn: inbound HTTP parse/serialise, sockets"),
    ("TrioASGIHTTPConnection", "quart: ASGI adapter"),
    ("Quart.__call__", "quart: ASGI adapter"),
    ("BodyLimit.__call__", "quart: ASGI adapter"),
    ("QuartTrio.handle_request", "quart: request/response machinery"),
    ("chat_completions", "route handler glue"),
    ("outcome_headers", "route handler glue"),
    ("read_json_object", "inbound body read + json.loads"),
    ("authenticate", "auth (key cache)"),
    ("to_canonical_request", "codecs"),
    ("from_canonical_response", "codecs"),
    ("from_canonical_request", "codecs"),
    ("to_canonical_response", "codecs"),
    ("StreamDecoder", "codecs"),
    ("StreamEncoder", "codecs"),
    ("SSEDecoder", "codecs"),
    ("Pipeline.", "pipeline glue (prepare, complete, stream relay)"),
    ("Router.select", "routing (model selection)"),
    ("gateway/routing/", "routing (model selection)"),
    ("Dispatcher.", "dispatch (route attempts, breakers, deadlines)"),
    ("Admission.", "admission and settlement (plans, rate limits, holds, log row)"),
    ("count_request", "tokenizer (prompt count)"),
    ("Writer.call", "store writer hand-off (trio side)"),
    ("OpenAIProvider.", "provider: build/parse upstream bodies"),
    ("AsyncClient.", "httpx: upstream client"),
    ("httpcore/", "httpx: upstream client"),
    ("dumps (gateway/http/common.py", "json.dumps of responses"),
    ("Logger.", "logging"),
)


def buckets(path: str) -> tuple[int, collections.Counter]:
    out: collections.Counter = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, count = line.rsplit(" ", 1)
            n = int(count)
            total += n
            bucket = "trio scheduler, other"
            for frame in stack.split(";"):
                for marker, name in MARKERS:
                    if marker in frame:
                        bucket = name
            out[bucket] += n
    return total, out


def top_frames(path: str, limit: int) -> list[tuple[str, int]]:
    self_time: collections.Counter = collections.Counter()
    with open(path) as f:
        for line in f:
            if line.strip():
                stack, count = line.rstrip("\n").rsplit(" ", 1)
                self_time[re.sub(r":\d+\)$", ")", stack.split(";")[-1])] += int(count)
    return self_time.most_common(limit)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("raw", help="py-spy --format raw output")
    p.add_argument("--rate", type=float, default=250.0, help="py-spy sampling rate used")
    p.add_argument("--requests", type=int, help="requests served while profiled")
    p.add_argument("--top", type=int, default=20, help="also list this many hottest frames")
    args = p.parse_args()
    total, found = buckets(args.raw)
    scale = 1e3 / args.rate / args.requests if args.requests else None
    print(f"{total} samples ({total / args.rate:.1f} s GIL-held)"
          + (f" = {total * scale:.2f} ms per request" if scale else ""))
    for name, n in found.most_common():
        ms = f"{n * scale:7.3f} ms  " if scale else ""
        print(f"{ms}{n / total * 100:5.1f}%  {name}")
    print("\nhottest frames (self time):")
    for frame, n in top_frames(args.raw, args.top):
        print(f"{n / total * 100:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
