"""Web search for agents (pure): the shape LiteLLM and Perplexity serve, and the two
upstream kinds, SearXNG's JSON API and Tavily.

Client side: to_canonical(body) / from_canonical(res).
Upstream: searxng_params(req, query) / searxng_result(data), tavily_body(req, query) /
tavily_result(data). A list of queries is several upstream calls, merged in order with
duplicate URLs dropped; the request is billed once.
"""
from __future__ import annotations

import re

from gateway import canonical_ops as o
from gateway import errors
from gateway.codecs.fields import bad, is_int

MAX_QUERIES = 5
MAX_QUERY_CHARS = 2000
_DOMAIN = re.compile(r"-?[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def to_canonical(body: object) -> o.SearchRequest:
    if not isinstance(body, dict):
        bad("body", "must be a JSON object")
    q = body.get("query")
    queries = [q] if isinstance(q, str) else q
    if not isinstance(queries, list) or not queries or not all(isinstance(x, str) and x.strip() for x in queries):
        bad("query", "is required: a non-empty string or array of non-empty strings")
    if len(queries) > MAX_QUERIES:
        bad("query", f"holds {len(queries)} queries; at most {MAX_QUERIES} are allowed")
    if any(len(x) > MAX_QUERY_CHARS for x in queries):
        bad("query", f"must be at most {MAX_QUERY_CHARS} characters")
    n = body.get("max_results", 10)
    if not is_int(n) or not 1 <= n <= 20:
        bad("max_results", "must be an integer from 1 to 20")
    domains = body.get("search_domain_filter") or []
    if not isinstance(domains, list) or len(domains) > 20 or not all(
            isinstance(d, str) and _DOMAIN.fullmatch(d) for d in domains):
        bad("search_domain_filter", "must be an array of at most 20 domain names")
    country = body.get("country")
    if country is not None and (not isinstance(country, str) or not re.fullmatch(r"[A-Za-z]{2}", country)):
        bad("country", "must be a two-letter country code")
    model = body.get("model", "")
    if not isinstance(model, str):
        bad("model", "must be a string")
    return o.SearchRequest(queries=tuple(queries), max_results=n, domains=tuple(domains),
                           country=country.upper() if country else None, model=model)


def from_canonical(res: o.SearchResult, id: str) -> dict:
    return {"object": "search", "id": id, "results": [
        {"title": h.title, "url": h.url, "snippet": h.snippet, "date": h.date} for h in res.hits]}


def merge(results: list[o.SearchResult], limit: int) -> o.SearchResult:
    seen, hits = set(), []
    for r in results:
        for h in r.hits:
            if h.url not in seen:
                seen.add(h.url)
                hits.append(h)
    return o.SearchResult(hits=tuple(hits[:limit]))


def _allowed(url: str, domains: tuple[str, ...]) -> bool:
    host = re.sub(r"^[a-z]+://", "", url.lower()).split("/", 1)[0]
    allow = [d.lower() for d in domains if not d.startswith("-")]
    deny = [d[1:].lower() for d in domains if d.startswith("-")]
    def under(d: str) -> bool:
        return host == d or host.endswith("." + d)
    return not any(under(d) for d in deny) and (not allow or any(under(d) for d in allow))


def _hits(items: object, req: o.SearchRequest, snippet_key: str, date_keys: tuple[str, ...]) -> o.SearchResult:
    if not isinstance(items, list):
        raise errors.UpstreamProtocolError("upstream search answer has no results array")
    hits = []
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("url"), str):
            continue
        date = next((it[k] for k in date_keys if isinstance(it.get(k), str)), None)
        hit = o.SearchHit(title=str(it.get("title") or ""), url=it["url"],
                          snippet=str(it.get(snippet_key) or ""), date=date[:10] if date else None)
        if _allowed(hit.url, req.domains):
            hits.append(hit)
    return o.SearchResult(hits=tuple(hits[:req.max_results]))


# ---------------------------------------------------------------- SearXNG

def searxng_params(req: o.SearchRequest, query: str) -> dict[str, str]:
    allow = [d for d in req.domains if not d.startswith("-")]
    q = query
    if len(allow) == 1:
        q += f" site:{allow[0]}"
    params = {"q": q, "format": "json"}
    if req.country:
        params["language"] = f"all-{req.country}"
    return params


def searxng_result(data: object, req: o.SearchRequest) -> o.SearchResult:
    return _hits(data.get("results") if isinstance(data, dict) else None, req, "content",
                 ("publishedDate", "pubdate"))


# ---------------------------------------------------------------- Tavily

def tavily_body(req: o.SearchRequest, query: str) -> dict:
    body: dict = {"query": query, "max_results": req.max_results}
    allow = [d for d in req.domains if not d.startswith("-")]
    deny = [d[1:] for d in req.domains if d.startswith("-")]
    if allow:
        body["include_domains"] = allow
    if deny:
        body["exclude_domains"] = deny
    if req.country:
        body["country"] = req.country.lower()
    return body


def tavily_result(data: object, req: o.SearchRequest) -> o.SearchResult:
    return _hits(data.get("results") if isinstance(data, dict) else None, req, "content",
                 ("published_date",))
