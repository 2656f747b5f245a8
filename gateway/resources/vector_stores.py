"""Vector stores for one account each: CRUD, their files and file batches, and hybrid
search (vectors + FTS5 keywords, fused by rank) used by the search route, the
Assistants `file_search` tool and the Responses hosted `file_search` tool."""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

import trio

import store.files as sf
import store.vector_stores as svs
from gateway import errors
import gateway.resources.search_logic as sl
from gateway.resources.chunking import parse_strategy

_DAY = 86400
MAX_QUERIES = 10                 # each one embedded (billed) and searched
MAX_QUERY_CHARS = 8000


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in raw.items()):
        raise errors.InvalidRequest("metadata must map at most 16 keys (64 characters) to "
                                    "strings (512 characters)", field="metadata")
    return raw


def _expires_after(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("anchor") != "last_active_at" or \
            type(raw.get("days")) is not int or not 1 <= raw["days"] <= 365:
        raise errors.InvalidRequest("expires_after must be {\"anchor\": \"last_active_at\", "
                                    "\"days\": 1..365}", field="expires_after")
    return json.dumps({"anchor": "last_active_at", "days": raw["days"]})


def _expires_at(row: svs.VectorStore) -> float | None:
    if not row.expires_after:
        return None
    return row.last_active_at + json.loads(row.expires_after)["days"] * _DAY


def file_object(r: svs.VectorStoreFile) -> dict[str, Any]:
    return {"id": r.file_id, "object": "vector_store.file", "usage_bytes": r.usage_bytes,
            "created_at": int(r.created_at), "vector_store_id": r.vector_store_id,
            "status": r.status, "last_error": json.loads(r.last_error) if r.last_error else None,
            "chunking_strategy": json.loads(r.chunking), "attributes": json.loads(r.attributes)}


class VectorStores:
    def __init__(self, writer, files, index, ingestor, embed, embedding_model: str) -> None:
        self.writer = writer
        self.files = files
        self.index = index
        self.ingestor = ingestor
        self.embed = embed
        self.embedding_model = embedding_model

    # ------------------------------------------------------------ stores

    async def object(self, row: svs.VectorStore) -> dict[str, Any]:
        counts = await self.writer.call(svs.counts, row.id)
        expires_at = _expires_at(row)
        status = ("expired" if expires_at is not None and expires_at < time.time()
                  else "in_progress" if counts["in_progress"] else "completed")
        return {"id": row.id, "object": "vector_store", "created_at": int(row.created_at),
                "name": row.name, "usage_bytes": await self.writer.call(svs.store_usage, row.id),
                "file_counts": counts, "status": status,
                "expires_after": json.loads(row.expires_after) if row.expires_after else None,
                "expires_at": int(expires_at) if expires_at else None,
                "last_active_at": int(row.last_active_at),
                "metadata": json.loads(row.metadata)}

    async def _file_rows(self, account_id: str, store_id: str, specs: list[dict],
                         default_chunking: str, batch_id: str | None = None) -> list[dict]:
        rows, now = [], time.time()
        for spec in specs:
            fid = spec.get("file_id")
            if not isinstance(fid, str):
                raise errors.InvalidRequest("file_id must be a string", field="file_id")
            await self.files.get(account_id, fid)       # 404 unless the caller owns it
            chunking = (json.dumps(parse_strategy(spec["chunking_strategy"]).as_object())
                        if spec.get("chunking_strategy") is not None else default_chunking)
            rows.append({"vector_store_id": store_id, "file_id": fid, "account_id": account_id,
                         "status": "in_progress", "batch_id": batch_id,
                         "attributes": json.dumps(sl.check_attributes(spec.get("attributes"))),
                         "chunking": chunking, "created_at": now})
        return rows

    async def create(self, account_id: str, body: dict) -> svs.VectorStore:
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise errors.InvalidRequest("name must be a string", field="name")
        file_ids = body.get("file_ids") or []
        if not isinstance(file_ids, list) or len(file_ids) > 500:
            raise errors.InvalidRequest("file_ids must be a list of at most 500 ids", field="file_ids")
        chunking = json.dumps(parse_strategy(body.get("chunking_strategy")).as_object())
        now, store_id = time.time(), "vs_" + secrets.token_hex(12)
        row = {"id": store_id, "account_id": account_id, "name": name,
               "embedding_model": self.embedding_model, "chunking": chunking,
               "metadata": json.dumps(_metadata(body.get("metadata"))),
               "expires_after": _expires_after(body.get("expires_after")),
               "created_at": now, "last_active_at": now}
        files = await self._file_rows(account_id, store_id, [{"file_id": f} for f in file_ids],
                                      chunking)
        vs = await self.writer.call(svs.create_store, row, files)
        for f in files:
            self.ingestor.submit(store_id, f["file_id"])
        return vs

    async def get(self, account_id: str, store_id: str) -> svs.VectorStore:
        row = await self.writer.call(svs.get_store, store_id, account_id)
        if row is None:
            raise errors.NotFound(f"No vector store with id '{store_id}'")
        return row

    async def listing(self, account_id: str, **page):
        return await self.writer.call(svs.list_stores, account_id, **page)

    async def update(self, account_id: str, store_id: str, body: dict) -> svs.VectorStore:
        await self.get(account_id, store_id)
        fields: dict[str, Any] = {}
        if "name" in body:
            if body["name"] is not None and not isinstance(body["name"], str):
                raise errors.InvalidRequest("name must be a string", field="name")
            fields["name"] = body["name"]
        if "metadata" in body:
            fields["metadata"] = json.dumps(_metadata(body["metadata"]))
        if "expires_after" in body:
            fields["expires_after"] = _expires_after(body["expires_after"])
        return await self.writer.call(svs.update_store, store_id, account_id, **fields)

    async def delete(self, account_id: str, store_id: str) -> None:
        if not await self.writer.call(svs.delete_store, store_id, account_id):
            raise errors.NotFound(f"No vector store with id '{store_id}'")
        await trio.to_thread.run_sync(self.index.drop, store_id)

    # ------------------------------------------------------------ files and batches

    async def add_file(self, account_id: str, store_id: str, body: dict) -> svs.VectorStoreFile:
        vs = await self.get(account_id, store_id)
        rows = await self._file_rows(account_id, store_id, [body], vs.chunking)
        (added,) = await self.writer.call(svs.add_files, rows)
        self.ingestor.submit(store_id, added.file_id)
        return added

    async def get_file(self, account_id: str, store_id: str, file_id: str) -> svs.VectorStoreFile:
        await self.get(account_id, store_id)
        row = await self.writer.call(svs.get_store_file, store_id, file_id, account_id)
        if row is None:
            raise errors.NotFound(f"No file '{file_id}' in vector store '{store_id}'")
        return row

    async def list_files(self, account_id: str, store_id: str, *, status: str | None,
                         batch_id: str | None = None, **page):
        await self.get(account_id, store_id)
        if status is not None and status not in svs.FILE_STATES:
            raise errors.InvalidRequest(f"filter must be one of {', '.join(svs.FILE_STATES)}",
                                        field="filter")
        return await self.writer.call(svs.list_store_files, store_id, status=status,
                                      batch_id=batch_id, **page)

    async def update_file(self, account_id: str, store_id: str, file_id: str, body: dict):
        await self.get_file(account_id, store_id, file_id)
        attrs = sl.check_attributes(body.get("attributes"))
        return await self.writer.call(svs.update_attributes, store_id, file_id, account_id, attrs)

    async def delete_file(self, account_id: str, store_id: str, file_id: str) -> None:
        await self.get(account_id, store_id)
        if not await self.writer.call(svs.delete_store_file, store_id, file_id, account_id):
            raise errors.NotFound(f"No file '{file_id}' in vector store '{store_id}'")
        await trio.to_thread.run_sync(self.index.delete_file, store_id, file_id)

    async def create_batch(self, account_id: str, store_id: str, body: dict) -> svs.FileBatch:
        vs = await self.get(account_id, store_id)
        specs = body.get("files")
        if specs is None:
            ids = body.get("file_ids")
            if not isinstance(ids, list) or not ids:
                raise errors.InvalidRequest("file_ids (or files) must be a non-empty list",
                                            field="file_ids")
            specs = [{"file_id": f, "attributes": body.get("attributes"),
                      "chunking_strategy": body.get("chunking_strategy")} for f in ids]
        if not isinstance(specs, list) or not specs or len(specs) > 2000:
            raise errors.InvalidRequest("files must be a list of 1 to 2000 entries", field="files")
        batch_id = "vsfb_" + secrets.token_hex(12)
        rows = await self._file_rows(account_id, store_id, specs, vs.chunking, batch_id)
        await self.writer.call(svs.add_files, rows, {"id": batch_id, "vector_store_id": store_id,
                                                     "account_id": account_id,
                                                     "created_at": time.time()})
        for r in rows:
            self.ingestor.submit(store_id, r["file_id"])
        return await self.get_batch(account_id, store_id, batch_id)

    async def get_batch(self, account_id: str, store_id: str, batch_id: str) -> svs.FileBatch:
        row = await self.writer.call(svs.get_batch, batch_id, store_id, account_id)
        if row is None:
            raise errors.NotFound(f"No file batch with id '{batch_id}'")
        return row

    async def cancel_batch(self, account_id: str, store_id: str, batch_id: str) -> svs.FileBatch:
        await self.get_batch(account_id, store_id, batch_id)
        await self.writer.call(svs.cancel_batch, batch_id)
        return await self.get_batch(account_id, store_id, batch_id)

    async def batch_object(self, b: svs.FileBatch) -> dict[str, Any]:
        counts = await self.writer.call(svs.counts, b.vector_store_id, b.id)
        status = ("cancelled" if b.cancelled else "in_progress" if counts["in_progress"]
                  else "failed" if counts["failed"] and not counts["completed"] else "completed")
        return {"id": b.id, "object": "vector_store.files_batch", "created_at": int(b.created_at),
                "vector_store_id": b.vector_store_id, "status": status, "file_counts": counts}

    # ------------------------------------------------------------ search

    async def search(self, account_id: str, store_ids: list[str], queries: list[str], *,
                     max_results: int = 10, filters: dict | None = None,
                     score_threshold: float = 0.0) -> list[dict[str, Any]]:
        stores = [await self.get(account_id, s) for s in store_ids]
        files = await self.writer.call(svs.searchable_files, store_ids, account_id)
        attrs = {(f.vector_store_id, f.file_id): json.loads(f.attributes) for f in files}
        names = await self.writer.call(sf.filenames, list({f.file_id for f in files}))
        rankings: list[list[tuple[str, int]]] = []
        hits: dict[tuple[str, int], Any] = {}
        depth = max(max_results * 4, 40)
        by_model: dict[str, list[list[float]]] = {}     # one billed embedding per model
        for vs in stores:
            allowed = {fid for (sid, fid), a in attrs.items() if sid == vs.id
                       and (filters is None or sl.matches(filters, a))}
            if not allowed:
                continue
            if vs.embedding_model not in by_model:
                by_model[vs.embedding_model] = await self.embed(account_id, vs.embedding_model,
                                                                queries)
            vecs = by_model[vs.embedding_model]
            for q, qv in zip(queries, vecs):
                vr, kr, h = await trio.to_thread.run_sync(
                    self.index.search, vs.id, qv, sl.fts_terms(q), allowed, depth)
                rankings += [[(vs.id, i) for i in vr], [(vs.id, i) for i in kr]]
                hits.update({(vs.id, cid): hit for cid, hit in h.items()})
        order = {key: n for n, key in enumerate({k for r in rankings for k in r})}
        back = {n: key for key, n in order.items()}
        fused = sl.fuse(*[[order[k] for k in r] for r in rankings]) if rankings else []
        out = []
        for n, score in fused:
            sid, cid = back[n]
            hit = hits.get((sid, cid))
            if hit is None or score < score_threshold:
                continue
            out.append({"file_id": hit.file_id, "filename": names.get(hit.file_id, ""),
                        "score": round(score, 6), "attributes": attrs.get((sid, hit.file_id), {}),
                        "content": [{"type": "text", "text": hit.text}],
                        "vector_store_id": sid})
            if len(out) == max_results:
                break
        return out


def parse_search(body: dict) -> tuple[list[str], int, dict | None, float, bool]:
    q = body.get("query")
    queries = [q] if isinstance(q, str) else q
    if not isinstance(queries, list) or not queries or not all(
            isinstance(x, str) and x.strip() for x in queries):
        raise errors.InvalidRequest("query must be a non-empty string or list of strings",
                                    field="query")
    if len(queries) > MAX_QUERIES or any(len(x) > MAX_QUERY_CHARS for x in queries):
        raise errors.InvalidRequest(f"query takes at most {MAX_QUERIES} strings of at most "
                                    f"{MAX_QUERY_CHARS} characters each", field="query")
    n = body.get("max_num_results", 10)
    if type(n) is not int or not 1 <= n <= 50:
        raise errors.InvalidRequest("max_num_results must be between 1 and 50",
                                    field="max_num_results")
    filters = body.get("filters")
    if filters is not None:
        sl.check_filter(filters)
    ranking = body.get("ranking_options") or {}
    threshold = ranking.get("score_threshold", 0.0) if isinstance(ranking, dict) else None
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise errors.InvalidRequest("ranking_options.score_threshold must be between 0 and 1",
                                    field="ranking_options.score_threshold")
    return queries, n, filters, float(threshold), bool(body.get("rewrite_query"))
