"""Rerank in the Cohere v2 shape, which Jina, Voyage, vLLM and TEI serve too (pure).

Client side: to_canonical(body) / from_canonical(res, req, id). Upstream side (kind
``cohere``): upstream_body(req, model) / upstream_result(data, n).

Documents may be strings or objects (Jina and the v1 API send ``{"text": ...}``); the
text scored is the string, or the object's ``text``, or its fields joined as
``key: value`` lines (Cohere's rule for structured documents). Search units follow
Cohere's billing: one per query plus up to 100 documents.
"""
from __future__ import annotations

import json

from gateway import canonical_ops as o
from gateway import errors
from gateway.codecs.fields import bad, body_with_model, is_int, opt_bool, opt_positive_int

MAX_DOCUMENTS = 1000
DOCS_PER_SEARCH_UNIT = 100


def search_units(n_documents: int) -> int:
    return max(1, -(-n_documents // DOCS_PER_SEARCH_UNIT))


def _doc_text(d: object, where: str) -> str:
    if isinstance(d, str):
        return d
    if isinstance(d, dict) and d:
        if isinstance(d.get("text"), str):
            return d["text"]
        return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in d.items())
    bad(where, "must be a string or a non-empty object")


def to_canonical(body: object, max_documents: int = MAX_DOCUMENTS) -> o.RerankRequest:
    body, model = body_with_model(body)
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        bad("query", "is required and must be a non-empty string")
    docs = body.get("documents")
    if not isinstance(docs, list) or not docs:
        bad("documents", "is required and must be a non-empty array")
    if len(docs) > max_documents:
        bad("documents", f"holds {len(docs)} documents; at most {max_documents} are allowed",
            code="too_many_documents")
    texts = tuple(_doc_text(d, f"documents[{i}]") for i, d in enumerate(docs))
    top_n = opt_positive_int(body, "top_n")
    mtpd = opt_positive_int(body, "max_tokens_per_doc")
    return o.RerankRequest(model=model, query=query, documents=texts, top_n=top_n,
                           return_documents=bool(opt_bool(body, "return_documents")),
                           max_tokens_per_doc=mtpd, originals=tuple(docs))


def from_canonical(res: o.RerankResult, req: o.RerankRequest, id: str) -> dict:
    hits = res.hits[:req.top_n] if req.top_n else res.hits
    results = []
    for h in hits:
        item: dict = {"index": h.index, "relevance_score": h.score}
        if req.return_documents:
            orig = req.originals[h.index] if h.index < len(req.originals) else req.documents[h.index]
            item["document"] = {"text": orig} if isinstance(orig, str) else orig
        results.append(item)
    units = res.search_units or search_units(len(req.documents))
    return {"id": id, "results": results,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": units}}}


def upstream_body(req: o.RerankRequest, model: str) -> dict:
    body: dict = {"model": model, "query": req.query, "documents": list(req.documents)}
    if req.top_n is not None:
        body["top_n"] = req.top_n
    if req.max_tokens_per_doc is not None:
        body["max_tokens_per_doc"] = req.max_tokens_per_doc
    return body


def upstream_result(data: object, n: int) -> o.RerankResult:
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise errors.UpstreamProtocolError("upstream rerank answer has no results array")
    hits = []
    for i, r in enumerate(results):
        idx = r.get("index") if isinstance(r, dict) else None
        score = r.get("relevance_score") if isinstance(r, dict) else None
        if not is_int(idx) or not 0 <= idx < n or not isinstance(score, (int, float)) or isinstance(score, bool):
            raise errors.UpstreamProtocolError(f"upstream rerank results[{i}] is malformed")
        hits.append(o.RerankHit(index=idx, score=float(score)))
    hits.sort(key=lambda h: (-h.score, h.index))
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    billed = meta.get("billed_units") if isinstance(meta.get("billed_units"), dict) else {}
    units = billed.get("search_units", 0)
    tokens = billed.get("input_tokens", 0)
    return o.RerankResult(hits=tuple(hits),
                          search_units=int(units) if isinstance(units, (int, float)) and units > 0 else 0,
                          input_tokens=int(tokens) if isinstance(tokens, (int, float)) and tokens > 0 else 0)
