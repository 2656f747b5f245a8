"""`python -m fuzz [--minutes N]`: run every decoder fuzzer for a long time.

CI runs each fuzzer once with a bounded number of examples. This runner repeats the
whole fuzz/ suite with a fresh random hypothesis seed each round until the time is up,
so long runs explore new inputs instead of replaying the same ones; the seed of a
failing round is printed so it can be replayed with --hypothesis-seed.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz")
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    deadline = time.monotonic() + args.minutes * 60
    rounds = 0
    while time.monotonic() < deadline:
        seed = random.randrange(2**32)
        rounds += 1
        print(f"fuzz round {rounds}, seed {seed}", flush=True)
        # The HTTP hostile-body fuzzer is bounded for CI; long runs give it more.
        env = {**os.environ, "PRISM_FUZZ_HTTP_EXAMPLES":
               os.environ.get("PRISM_FUZZ_HTTP_EXAMPLES", "1000")}
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              f"--hypothesis-seed={seed}", here], env=env)
        if rc != 0:
            print(f"fuzz: failure in round {rounds}; replay with --hypothesis-seed={seed}")
            return rc
    print(f"fuzz: {rounds} rounds passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
