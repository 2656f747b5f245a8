"""The search index of one vector store: one SQLite file per store in the index dir.

Each file holds the store's chunks with their embeddings (float32 blobs) and an FTS5
table over the chunk text kept in step by triggers. Keeping it out of the main store
means bulk ingestion (100k chunks) never queues behind or in front of the money writes
on the store's single writer, and dropping a vector store is one unlink.

Python's sqlite3 here cannot load extensions (so no sqlite-vec); nearest neighbours are
an exact scan with numpy over the store's matrix, cached per store and reloaded when
the file's write generation moves. Exact search at 100k x 256 dims takes milliseconds.

Every function runs on a worker thread and opens its own connection.
"""
from __future__ import annotations

import os
import sqlite3
import threading
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
    ids: np.ndarray
    files: np.ndarray
    vecs: np.ndarray


class VectorIndex:
    def __init__(self, root: str) -> None:
        self.root = root
        self._cache: dict[str, _Matrix] = {}
        self._lock = threading.Lock()

    def path(self, store_id: str) -> str:
        return os.path.join(self.root, f"{store_id}.sqlite")

    def replace_file(self, store_id: str, file_id: str, chunks: list[str], vecs: np.ndarray) -> int:
        """Put a file's chunks in (dropping any earlier attempt's); the bytes used."""
        import numpy as np
        os.makedirs(self.root, exist_ok=True)
        conn = _connect(self.path(store_id), create=True)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM chunk WHERE file_id = ?", (file_id,))
            vecs = np.asarray(vecs, dtype=np.float32)
            conn.executemany("INSERT INTO chunk (file_id, seq, text, vec) VALUES (?, ?, ?, ?)",
                             ((file_id, i, t, vecs[i].tobytes()) for i, t in enumerate(chunks)))
            _bump(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
        return sum(len(t.encode()) for t in chunks) + int(vecs.nbytes)

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
            return cached
        rows = conn.execute("SELECT id, file_id, vec FROM chunk ORDER BY id").fetchall()
        if rows:
            vecs = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        else:
            vecs = np.zeros((0, 1), dtype=np.float32)
        m = _Matrix(gen, np.array([r[0] for r in rows], dtype=np.int64),
                    np.array([r[1] for r in rows], dtype=object), vecs)
        with self._lock:
            self._cache[store_id] = m
        return m

    def search(self, store_id: str, query_vec: list[float] | None, fts: str,
               allowed: set[str] | None, depth: int) -> tuple[list[int], list[int], dict[int, Hit]]:
        """The vector ranking and the keyword ranking (chunk ids, best first, `depth`
        each) over chunks of `allowed` files (all when None), and the chunks they name."""
        if not os.path.exists(self.path(store_id)):
            return [], [], {}
        conn = _connect(self.path(store_id))
        try:
            m = self._matrix(conn, store_id)
            vec_rank: list[int] = []
            cos: dict[int, float] = {}
            if query_vec is not None and len(m.ids) and m.vecs.shape[1] == len(query_vec):
                import numpy as np
                sims = m.vecs @ np.asarray(query_vec, dtype=np.float32)
                if allowed is not None:
                    sims = np.where(np.isin(m.files, list(allowed)), sims, -np.inf)
                k = min(depth, len(sims))
                top = np.argpartition(-sims, k - 1)[:k]
                top = top[np.argsort(-sims[top])]
                vec_rank = [int(m.ids[i]) for i in top if np.isfinite(sims[i])]
                cos = {int(m.ids[i]): float(sims[i]) for i in top}
            kw_rank: list[int] = []
            if fts:
                rows = conn.execute(
                    "SELECT c.id, c.file_id FROM chunk_fts JOIN chunk c ON c.id = chunk_fts.rowid "
                    "WHERE chunk_fts MATCH ? ORDER BY bm25(chunk_fts) LIMIT ?",
                    (fts, depth * 4 if allowed is not None else depth)).fetchall()
                kw_rank = [r[0] for r in rows if allowed is None or r[1] in allowed][:depth]
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
