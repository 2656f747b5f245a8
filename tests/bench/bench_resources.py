"""Vector-store benchmark: ingest a 200-page PDF and a 5 MB Markdown file (parse, chunk,
embed with the simulator's embedding function in-process, so the figures are the
index's and not an upstream's; index), then search latency at 10k and 100k
chunks. Run: PYTHONPATH=.:tests/resources python tests/bench/bench_resources.py"""
from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time

import numpy as np

from gateway import tokenizer
from gateway.resources.chunking import Chunking, chunk_text
from gateway.resources.parse import extract_text
from gateway.resources.search_logic import fts_terms
from gateway.simulator.sim_inference import embed as sim_embed
from store.vector_index import VectorIndex

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "resources"))
from pdfgen import make_pdf  # noqa: E402

WORDS = ("river market garden signal copper lantern meadow orbit harbor canvas thunder pepper "
         "marble violet ladder pillow falcon ember quartz willow saddle comet basalt tundra "
         "prism cobalt fennel gravel hollow island juniper kettle lemon mosaic nectar").split()


def sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def ingest(index: VectorIndex, store_id: str, name: str, data: bytes) -> tuple[float, int]:
    t = time.perf_counter()
    text = extract_text(name, data)
    chunks = chunk_text(text, Chunking(), tokenizer.encoding())
    vecs = [sim_embed(c) for c in chunks]
    index.replace_file(store_id, name, chunks, np.asarray(vecs, dtype=np.float32))
    return time.perf_counter() - t, len(chunks)


def search_latency(index: VectorIndex, store_id: str, rng: random.Random,
                   allowed: set[str] | None, n: int = 200):
    """As VectorStores.search calls it: the completed files of the store are `allowed`
    (a filter narrows them further), depth 40 for max_num_results 10."""
    times = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(4))
        t = time.perf_counter()
        index.search(store_id, sim_embed(q), fts_terms(q), allowed, 40)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main() -> None:
    rng = random.Random(7)
    root = tempfile.mkdtemp()
    index = VectorIndex(root)
    pdf = make_pdf([[sentence(rng) for _ in range(45)] for _ in range(200)])
    md = []
    while sum(len(x) for x in md) < 5 * 1024 * 1024:
        md.append(f"## Section {len(md)}\n\n" + " ".join(sentence(rng) for _ in range(8)) + "\n\n")
    md_bytes = "".join(md).encode()
    for name, data in (("doc.pdf", pdf), ("doc.md", md_bytes)):
        secs, n = ingest(index, "vs_" + name.replace(".", "_"), name, data)
        size = index.size_bytes("vs_" + name.replace(".", "_"))
        print(f"{name}: {len(data) / 1e6:.2f} MB in, {n} chunks, ingested in {secs:.2f} s, "
              f"index {size / 1e6:.1f} MB")
    for target in (10_000, 100_000):
        sid = f"vs_{target}"
        t = time.perf_counter()
        for start in range(0, target, 5000):
            chunks = [" ".join(sentence(rng) for _ in range(5)) for _ in range(min(5000, target - start))]
            index.replace_file(sid, f"file{start}", chunks,
                               np.asarray([sim_embed(c) for c in chunks], dtype=np.float32))
        build = time.perf_counter() - t
        files = {f"file{start}" for start in range(0, target, 5000)}
        index.search(sid, sim_embed("warm"), fts_terms("warm river"), files, 40)
        print(f"{target} chunks: built in {build:.1f} s, index {index.size_bytes(sid) / 1e6:.0f} MB")
        for label, allowed in (("all files", files), ("a filter keeping half", set(sorted(files)[::2]))):
            p50, p99 = search_latency(index, sid, rng, allowed)
            print(f"  hybrid search, {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
