"""The search index of one vector store: one SQLite file per store in the index dir.

Each file holds the store's chunks with their embeddings (float32 blobs) and an FTS5
table over the chunk text kept in step by triggers. Keeping it out of the main store
means bulk ingestion (100k chunks) never queues behind or in front of the money writes
on the store's single writer, and dropping a vector store is one unlink.

Python's sqlite3 here cannot load extensions (so no sqlite-vec); nearest neighbours are
an exact scan with numpy over the store's matrix, cached per store (least recently used
first out past `cache_bytes`) and reloaded when the file's write generation moves.
Files are small integer codes in the matrix, so an attribute filter is one gather, and
a filter keeping few files scans only their rows.

Keyword search is bounded too: FTS5 ranks by bm25 only over at most KEYWORD_CANDIDATES
matching chunks. The query's terms are taken rarest first (document frequencies counted
up to the cap) while their matches fit; the commonest terms, whose bm25 weight is the
smallest, are the ones left out. When even the rarest term is in more chunks than that,
the newest KEYWORD_CANDIDATES of them are scored.

Every function runs on a worker thread and opens its own connection.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # imported where used: numpy costs ~11 MB resident in every gateway
    import numpy as np

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta VALUES ('generation', 0)",
    "CREATE TABLE IF NOT EXISTS chunk (id INTEGER PRIMARY KEY, file_id TEXT NOT NULL, "
    "seq INTEGER NOT NULL, text TEXT NOT NULL, vec BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS chunk_file ON chunk(file_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_fts USING fts5(text, content='chunk', "
    "content_rowid='id')",
    "CREATE TRIGGER IF NOT EXISTS chunk_ai AFTER INSERT ON chunk BEGIN "
    "INSERT INTO chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS chunk_ad AFTER DELETE ON chunk BEGIN "
    "INSERT INTO chunk_fts(chunk_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
)


KEYWORD_CANDIDATES = 1000     # chunks FTS5 may score for one query


def _connect(path: str, create: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    if create:
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute("PRAGMA synchronous=normal")
        for stmt in _SCHEMA:
            conn.execute(stmt)
    return conn


def _bump(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET v = v + 1 WHERE k = 'generation'")


@dataclass
class Hit:
    chunk_id: int
    file_id: str
    text: str
    score: float


@dataclass
class _Matrix:
    generation: int
    ids: np.ndarray             # chunk ids, ascending
    codes: np.ndarray           # per row: its file's index in `names`
    names: list[str]            # file ids
    vecs: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.vecs.nbytes + self.ids.nbytes + self.codes.nbytes)

    def keep(self, allowed: set[str] | None) -> np.ndarray | None:
        """Per file code, whether it may be returned; None when every file may."""
        if allowed is None:
            return None
        wanted = [i for i, name in enumerate(self.names) if name in allowed]
        if len(wanted) == len(self.names):
            return None
        import numpy as np
        keep = np.zeros(len(self.names), dtype=bool)
        keep[wanted] = True
        return keep


def _fold(term: str) -> str:
    """A term as FTS5's unicode61 tokenizer stores it (diacritics removed)."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", term)
                   if not unicodedata.combining(ch)).lower()


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _keyword(conn: sqlite3.Connection, terms: list[str], cap: int) -> list[int]:
    """Chunk ids best first by bm25, scoring at most `cap` chunks (see the docstring)."""
    if not terms:
        return []
    # Each term's document frequency, counted only up to cap + 1: walking a doclist
    # without scoring is cheap, and past the cap the exact number does not matter
    # (fts5vocab would count a common term's whole doclist).
    df: dict[str, int] = {}
    for t in dict.fromkeys(_fold(t) for t in terms):
        n = conn.execute("SELECT COUNT(*) FROM (SELECT rowid FROM chunk_fts WHERE chunk_fts "
                         "MATCH ? LIMIT ?)", (_quote(t), cap + 1)).fetchone()[0]
        if n:
            df[t] = n
    chosen: list[str] = []
    total = 0
    for t in sorted(df, key=lambda t: df[t]):
        if chosen and total + df[t] > cap:
            break
        chosen.append(t)
        total += df[t]
    if not chosen:
        return []
    expr = " OR ".join(_quote(t) for t in chosen)
    if total <= cap:
        rows = conn.execute("SELECT rowid FROM chunk_fts WHERE chunk_fts MATCH ? "
                            "ORDER BY rank LIMIT ?", (expr, cap)).fetchall()
        return [r[0] for r in rows]
    scored = conn.execute("SELECT rowid, bm25(chunk_fts) FROM chunk_fts WHERE chunk_fts MATCH ? "
                          "ORDER BY rowid DESC LIMIT ?", (expr, cap)).fetchall()
    scored.sort(key=lambda r: r[1])
    return [r[0] for r in scored]


class VectorIndex:
    def __init__(self, root: str, *, cache_bytes: int = 1 << 30,
                 keyword_cap: int = KEYWORD_CANDIDATES) -> None:
        self.root = root
        self.cache_bytes = cache_bytes
        self.keyword_cap = keyword_cap
        self._cache: OrderedDict[str, _Matrix] = OrderedDict()
        self._lock = threading.Lock()

    def path(self, store_id: str) -> str:
        return os.path.join(self.root, f"{store_id}.sqlite")

    def _writable(self, store_id: str) -> sqlite3.Connection:
        """A connection to the store's file, made complete (schema and all) under a
        temporary name and linked into place, so no reader ever opens it half made."""
        path = self.path(store_id)
        if not os.path.exists(path):
            os.makedirs(self.root, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.new"
            _connect(tmp, create=True).close()
            try:
                os.link(tmp, path)          # fails if another writer got there first
            except FileExistsError:
                pass
            finally:
                for suffix in ("", "-wal", "-shm"):
                    try:
                        os.unlink(tmp + suffix)
                    except FileNotFoundError:
                        pass
        return _connect(path, create=True)

    def replace_file(self, store_id: str, file_id: str, chunks: list[str], vecs: np.ndarray) -> int:
        """Put a file's chunks in (dropping any earlier attempt's); the bytes used."""
        self.put_chunks(store_id, file_id, 0, chunks, vecs)
        return self.seal_file(store_id, file_id, len(chunks))

    def put_chunks(self, store_id: str, file_id: str, start: int, chunks: list[str],
                   vecs: np.ndarray) -> None:
        """Chunks `start`.. of a file being ingested (replacing any there from an earlier
        attempt). They are kept as each embedding batch is paid for, so an ingestion cut
        short resumes after them; search ignores them until the file is completed."""
        import numpy as np
        conn = self._writable(store_id)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM chunk WHERE file_id = ? AND seq >= ?", (file_id, start))
            vecs = np.asarray(vecs, dtype=np.float32)
            conn.executemany("INSERT INTO chunk (file_id, seq, text, vec) VALUES (?, ?, ?, ?)",
                             ((file_id, start + i, t, vecs[i].tobytes())
                              for i, t in enumerate(chunks)))
            conn.execute("COMMIT")
        finally:
            conn.close()

    def seal_file(self, store_id: str, file_id: str, count: int) -> int:
        """The file's first `count` chunks are all of it: drop any beyond, make the write
        visible to cached matrices; the bytes its chunks use."""
        conn = self._writable(store_id)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM chunk WHERE file_id = ? AND seq >= ?", (file_id, count))
            _bump(conn)
            used = conn.execute("SELECT COALESCE(SUM(LENGTH(CAST(text AS BLOB)) + LENGTH(vec)), 0) "
                                "FROM chunk WHERE file_id = ?", (file_id,)).fetchone()[0]
            conn.execute("COMMIT")
        finally:
            conn.close()
        return int(used)

    def delete_file(self, store_id: str, file_id: str) -> None:
        if not os.path.exists(self.path(store_id)):
            return
        conn = _connect(self.path(store_id))
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM chunk WHERE file_id = ?", (file_id,))
            _bump(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def drop(self, store_id: str) -> None:
        with self._lock:
            self._cache.pop(store_id, None)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(self.path(store_id) + suffix)
            except FileNotFoundError:
                pass

    def size_bytes(self, store_id: str) -> int:
        return sum(os.path.getsize(self.path(store_id) + s) for s in ("", "-wal")
                   if os.path.exists(self.path(store_id) + s))

    def _matrix(self, conn: sqlite3.Connection, store_id: str) -> _Matrix:
        import numpy as np
        gen = conn.execute("SELECT v FROM meta WHERE k = 'generation'").fetchone()[0]
        with self._lock:
            cached = self._cache.get(store_id)
            if cached is not None and cached.generation == gen:
                self._cache.move_to_end(store_id)
                return cached
        rows = conn.execute("SELECT id, file_id, vec FROM chunk ORDER BY id").fetchall()
        if rows:
            vecs = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        else:
            vecs = np.zeros((0, 1), dtype=np.float32)
        code_of: dict[str, int] = {}
        codes = np.fromiter((code_of.setdefault(r[1], len(code_of)) for r in rows),
                            dtype=np.int32, count=len(rows))
        m = _Matrix(gen, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                    codes, list(code_of), vecs)
        with self._lock:
            self._cache[store_id] = m
            self._cache.move_to_end(store_id)
            total = sum(x.nbytes for x in self._cache.values())
            while total > self.cache_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                total -= old.nbytes
        return m

    def search(self, store_id: str, query_vec: list[float] | None, terms: list[str],
               allowed: set[str] | None, depth: int) -> tuple[list[int], list[int], dict[int, Hit]]:
        """The vector ranking and the keyword ranking (chunk ids, best first, `depth`
        each) over chunks of `allowed` files (all when None), and the chunks they name."""
        if not os.path.exists(self.path(store_id)):
            return [], [], {}
        import numpy as np
        conn = _connect(self.path(store_id))
        try:
            m = self._matrix(conn, store_id)
            keep = m.keep(allowed)
            # A filter: only the rows of the files it keeps are scored.
            rows = None if keep is None else np.flatnonzero(keep[m.codes])
            vec_rank: list[int] = []
            cos: dict[int, float] = {}
            n = len(m.ids) if rows is None else len(rows)
            if query_vec is not None and n and m.vecs.shape[1] == len(query_vec):
                q = np.asarray(query_vec, dtype=np.float32)
                if rows is not None and 4 * len(rows) > len(m.ids):
                    # Copying most of the rows out costs more than scoring them all.
                    sims = np.where(keep[m.codes], m.vecs @ q, -np.inf)
                    rows = None
                    n = len(m.ids)
                else:
                    sims = (m.vecs if rows is None else m.vecs[rows]) @ q
                k = min(depth, n)
                top = np.argpartition(sims, n - k)[n - k:]
                top = top[np.argsort(-sims[top])]
                top = top[np.isfinite(sims[top])]
                at = top if rows is None else rows[top]
                vec_rank = [int(i) for i in m.ids[at]]
                cos = {int(m.ids[a]): float(sims[t]) for a, t in zip(at, top)}
            kw_rank: list[int] = []
            found = np.asarray(_keyword(conn, terms, self.keyword_cap), dtype=np.int64)
            if len(found) and len(m.ids):
                # Chunks written after the matrix was read are not in it: left out.
                pos = np.minimum(np.searchsorted(m.ids, found), len(m.ids) - 1)
                ok = m.ids[pos] == found
                if keep is not None:
                    ok &= keep[m.codes[pos]]
                kw_rank = [int(i) for i in found[ok][:depth]]
            wanted = list(dict.fromkeys(vec_rank + kw_rank))
            hits: dict[int, Hit] = {}
            for i in range(0, len(wanted), 500):
                part = wanted[i:i + 500]
                q = f"SELECT id, file_id, text FROM chunk WHERE id IN ({','.join('?' * len(part))})"
                for cid, fid, text in conn.execute(q, part):
                    hits[cid] = Hit(cid, fid, text, cos.get(cid, 0.0))
            return vec_rank, kw_rank, hits
        finally:
            conn.close()

    def file_chunks(self, store_id: str, file_id: str) -> list[str]:
        if not os.path.exists(self.path(store_id)):
            return []
        conn = _connect(self.path(store_id))
        try:
            return [r[0] for r in conn.execute(
                "SELECT text FROM chunk WHERE file_id = ? ORDER BY seq", (file_id,))]
        finally:
            conn.close()
