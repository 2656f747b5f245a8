"""The pure parts of vector-store search: attribute filters, query rewriting and rank
fusion. No I/O."""
from __future__ import annotations

import re
from typing import Any

from gateway import errors

_CMP = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
_WORD = re.compile(r"[A-Za-z0-9_]+|[^\sA-Za-z0-9_]", re.UNICODE)
_TERM = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset("a an and are as at be but by do does for from how i in is it me of on or "
                  "please tell that the this to was what when where which who why with you "
                  "your can could would should about".split())
RRF_K = 60


def check_filter(f: Any, where: str = "filters") -> None:
    if not isinstance(f, dict) or f.get("type") not in _CMP + ("and", "or"):
        raise errors.InvalidRequest(f"{where} must be a comparison ({', '.join(_CMP)}) or a "
                                    "compound (and, or) filter", field=where)
    if f["type"] in ("and", "or"):
        subs = f.get("filters")
        if not isinstance(subs, list) or not subs:
            raise errors.InvalidRequest(f"{where}.filters must be a non-empty list", field=where)
        for i, sub in enumerate(subs):
            check_filter(sub, f"{where}.filters[{i}]")
        return
    if not isinstance(f.get("key"), str):
        raise errors.InvalidRequest(f"{where}.key must be a string", field=where)
    v = f.get("value")
    if f["type"] in ("in", "nin"):
        if not isinstance(v, list):
            raise errors.InvalidRequest(f"{where}.value must be a list for {f['type']}", field=where)
    elif not isinstance(v, (str, int, float, bool)):
        raise errors.InvalidRequest(f"{where}.value must be a string, number or boolean", field=where)


def matches(f: dict, attrs: dict[str, Any]) -> bool:
    t = f["type"]
    if t == "and":
        return all(matches(s, attrs) for s in f["filters"])
    if t == "or":
        return any(matches(s, attrs) for s in f["filters"])
    if f["key"] not in attrs:
        return t in ("ne", "nin")
    have, want = attrs[f["key"]], f["value"]
    if t == "eq":
        return have == want
    if t == "ne":
        return have != want
    if t == "in":
        return have in want
    if t == "nin":
        return have not in want
    try:
        return {"gt": have > want, "gte": have >= want, "lt": have < want, "lte": have <= want}[t]
    except TypeError:      # comparing a string attribute with a number: no match
        return False


def check_attributes(attrs: Any) -> dict[str, Any]:
    if attrs is None:
        return {}
    if not isinstance(attrs, dict) or len(attrs) > 16:
        raise errors.InvalidRequest("attributes must be an object of at most 16 keys",
                                    field="attributes")
    for k, v in attrs.items():
        if len(k) > 64 or not isinstance(v, (str, int, float, bool)) or \
                (isinstance(v, str) and len(v) > 512):
            raise errors.InvalidRequest("attribute keys are at most 64 characters and values "
                                        "strings (512 max), numbers or booleans",
                                        field=f"attributes.{k}")
    return attrs


def terms(text: str) -> list[str]:
    return [t.lower() for t in _TERM.findall(text)]


def rewrite(query: str) -> str:
    """A keyword form of a question: what `rewrite_query` sends to the index."""
    kept = [t for t in terms(query) if t not in _STOP]
    return " ".join(kept) or query


def fts_terms(query: str) -> list[str]:
    """The keywords of a query for FTS5 (each is quoted by the index, so FTS5 syntax in
    the user's text is never interpreted); stop words only when there is nothing else."""
    words = [t for t in terms(query) if t not in _STOP] or terms(query)
    return list(dict.fromkeys(words))[:64]


def fuse(*rankings: list[int], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists; scores scaled so that first in every
    list is 1.0."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, ident in enumerate(ranking):
            scores[ident] = scores.get(ident, 0.0) + 1.0 / (k + rank + 1)
    top = len(rankings) / (k + 1)
    return sorted(((i, s / top) for i, s in scores.items()), key=lambda x: -x[1])
