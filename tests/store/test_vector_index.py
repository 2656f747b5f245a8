"""store/vector_index.py: bounded keyword search, filters over file codes, the cache."""
from __future__ import annotations

import numpy as np

from store.vector_index import VectorIndex


def vec(*hot: int, dims: int = 8) -> list[float]:
    v = np.zeros(dims, dtype=np.float32)
    v[list(hot)] = 1.0
    return list(v / np.linalg.norm(v))


def fill(index: VectorIndex, store: str, file_id: str, texts: list[str], hot: int) -> None:
    index.replace_file(store, file_id, texts, np.asarray([vec(hot)] * len(texts)))


def test_rare_terms_are_ranked_exactly_and_common_ones_capped(tmp_path):
    index = VectorIndex(str(tmp_path), keyword_cap=50)
    fill(index, "vs", "f1", ["common words here"] * 300, 0)
    fill(index, "vs", "f2", ["common zebra crossing"], 1)
    vr, kr, hits = index.search("vs", vec(1), ["common", "zebra"], None, 10)
    # "common" is in 301 chunks (over the cap): left out, the rare term decides.
    assert kr and hits[kr[0]].text == "common zebra crossing" and len(kr) == 1
    assert hits[vr[0]].file_id == "f2"
    # Only common terms: the newest `cap` matches are scored, never all of them.
    _, kr, _ = index.search("vs", vec(0), ["common"], None, 1000)
    assert len(kr) == 50 and kr[0] > 250
    # Unknown or FTS-syntax words match nothing and break nothing.
    assert index.search("vs", vec(0), ['nowhere"', "AND"], None, 10)[1] == []
    # Diacritics fold as FTS5 stores them.
    fill(index, "vs", "f3", ["cafe au lait"], 2)
    assert index.search("vs", vec(2), ["café"], None, 10)[1]


def test_a_filter_scores_only_the_files_it_keeps(tmp_path):
    index = VectorIndex(str(tmp_path))
    fill(index, "vs", "a", ["apple pie"] * 5, 0)
    fill(index, "vs", "b", ["apple tart"] * 5, 1)
    vr, kr, hits = index.search("vs", vec(0), ["apple"], {"b"}, 10)
    assert vr and kr and {hits[i].file_id for i in vr + kr} == {"b"}
    assert index.search("vs", vec(0), ["apple"], {"gone"}, 10)[:2] == ([], [])
    vr, kr, _ = index.search("vs", vec(0), ["apple"], {"a", "b"}, 3)
    assert len(vr) == 3 and len(kr) == 3
    # A file replaced or deleted is seen at once (the write generation moved).
    index.delete_file("vs", "b")
    vr, kr, hits = index.search("vs", vec(1), ["tart"], None, 10)
    assert kr == [] and {hits[i].file_id for i in vr} == {"a"}


def test_the_matrix_cache_is_bounded(tmp_path):
    index = VectorIndex(str(tmp_path), cache_bytes=1)
    for s in ("one", "two", "three"):
        fill(index, s, "f", ["text"] * 10, 0)
        index.search(s, vec(0), ["text"], None, 5)
    assert list(index._cache) == ["three"]
    vr, _, _ = index.search("one", vec(0), ["text"], None, 5)    # reloaded, still right
    assert len(vr) == 5 and list(index._cache) == ["one"]


def test_a_narrow_filter_scans_only_its_rows(tmp_path):
    index = VectorIndex(str(tmp_path))
    fill(index, "vs", "big1", ["pear"] * 20, 0)
    fill(index, "vs", "big2", ["pear"] * 20, 0)
    fill(index, "vs", "small", ["pear plum"] * 2, 3)
    vr, kr, hits = index.search("vs", vec(0), ["pear"], {"small"}, 10)
    assert len(vr) == 2 and len(kr) == 2 and {hits[i].file_id for i in vr + kr} == {"small"}
    assert all(hits[i].score == 0.0 for i in vr)     # orthogonal to the query, still ranked
