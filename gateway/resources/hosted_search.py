"""The Responses API's hosted `file_search` tool, executed by Prism for any upstream.

The hosted tool ({"type": "file_search", "vector_store_ids": [...]}) is taken out of the
request and offered to the model as a function of the same name; each call the model
makes is answered from the caller's vector stores and the model is asked again, until
it answers. Every model call is its own admitted, billed request (resources/chat.py).
The answer then carries a `file_search_call` output item and `file_citation`
annotations, as OpenAI's own would. With stream=true the same loop is written to the
client as it runs: hosted_search_stream.py.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from gateway import canonical as c
from gateway import errors
import gateway.resources.run_build as rb
import gateway.resources.search_logic as sl
from gateway.resources.vector_stores import MAX_QUERY_CHARS

MAX_ROUNDS = 4


@dataclasses.dataclass
class FileSearch:
    vector_store_ids: list[str]
    max_num_results: int = 10
    filters: dict | None = None
    score_threshold: float = 0.0
    tool: dict = dataclasses.field(default_factory=dict)   # as the client sent it (echoed)


def take_file_search(body: dict) -> tuple[dict, FileSearch | None]:
    """The body with a hosted file_search tool swapped for a function of that name."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return body, None
    hosted = [t for t in tools if isinstance(t, dict) and t.get("type") == "file_search"]
    if not hosted:
        return body, None
    t = hosted[0]
    ids = t.get("vector_store_ids")
    if len(hosted) > 1 or not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise errors.InvalidRequest("file_search needs vector_store_ids: a non-empty list of ids",
                                    field="tools.file_search.vector_store_ids")
    n = t.get("max_num_results", 10)
    if type(n) is not int or not 1 <= n <= 50:
        raise errors.InvalidRequest("file_search.max_num_results must be 1..50",
                                    field="tools.file_search.max_num_results")
    if t.get("filters") is not None:
        sl.check_filter(t["filters"], "tools.file_search.filters")
    threshold = (t.get("ranking_options") or {}).get("score_threshold", 0.0)
    fs = FileSearch(ids, n, t.get("filters"), float(threshold), t)
    fn = rb.FILE_SEARCH
    swapped = [{"type": "function", "name": fn.name, "description": fn.description,
                "parameters": fn.parameters} if x is t else x for x in tools]
    return {**body, "tools": swapped}, fs


def query_of(arguments: str) -> str:
    """The query a file_search call asks for (its raw arguments when they name none)."""
    try:
        q = json.loads(arguments).get("query")
    except (json.JSONDecodeError, AttributeError):
        q = None
    q = q if isinstance(q, str) and q.strip() else arguments
    return q[:MAX_QUERY_CHARS]       # the model's words are embedded, billed: bounded


def echo_tools(echo: dict, fs: FileSearch) -> dict:
    """The request echo with the hosted tool the client sent in place of our function."""
    return {**echo, "tools": [fs.tool if isinstance(t, dict) and t.get("name") == "file_search"
                              and t.get("type") == "function" else t
                              for t in echo.get("tools") or []]}


def annotate_output(payload: dict, sources: dict[str, str], filenames: dict[str, str]) -> None:
    """file_citation annotations on the output text of a Response object, in place."""
    for item in payload["output"]:
        if item.get("type") != "message":
            continue
        for part in item.get("content", []):
            if part.get("type") == "output_text":
                part["annotations"] = [
                    {"type": "file_citation", "index": a["start_index"],
                     "file_id": a["file_citation"]["file_id"],
                     "filename": filenames.get(a["file_citation"]["file_id"], "")}
                    for a in rb.annotate(part["text"], sources)]


async def complete(chat, vector_stores, account_id: str, req: c.Request, fs: FileSearch):
    """Run the search loop; (final response, summed usage, queries, sources, outcomes)."""
    for vs in fs.vector_store_ids:
        await vector_stores.get(account_id, vs)       # 404 unless the caller's
    messages = list(req.messages)
    queries: list[str] = []
    sources: dict[str, str] = {}
    outcomes = []
    for round_no in range(MAX_ROUNDS + 1):
        last = round_no == MAX_ROUNDS
        r = dataclasses.replace(req, messages=tuple(messages), stream=True, include_usage=True,
                                tool_choice=c.ToolChoice("none") if last else req.tool_choice)
        resp, outcome = await chat(account_id, r, lambda ev: None)
        outcomes.append(outcome)
        calls = [k for k in resp.message.tool_calls if k.name == "file_search"]
        if not calls or len(calls) != len(resp.message.tool_calls):
            return resp, queries, sources, outcomes
        messages.append(resp.message)
        for k in calls:
            q = query_of(k.arguments)
            call_no = len(queries)
            queries.append(q)
            results = await vector_stores.search(account_id, fs.vector_store_ids, [q],
                                                 max_results=fs.max_num_results,
                                                 filters=fs.filters,
                                                 score_threshold=fs.score_threshold)
            for i, res in enumerate(results):
                sources[f"{call_no}:{i}"] = res["file_id"]
            messages.append(c.Message("tool", (c.ToolResultPart(
                k.id, (c.TextPart(rb.search_result_text(call_no, results)),)),)))
    raise AssertionError("unreachable")


def decorate(payload: dict, fs: FileSearch, queries: list[str], sources: dict[str, str],
             filenames: dict[str, str]) -> dict[str, Any]:
    """Add the file_search_call item and file_citation annotations to a Response object."""
    call = {"id": payload["id"].replace("resp_", "fs_", 1), "type": "file_search_call",
            "status": "completed", "queries": queries, "results": None}
    annotate_output(payload, sources, filenames)
    payload["output"].insert(0, call)
    payload["tools"] = echo_tools(payload, fs)["tools"]
    return payload


async def respond(resources, account_id: str, req: c.Request, fs: FileSearch, *,
                  response_id: str, created_at: int, request_echo: dict):
    """The whole non-streamed Response object, and one outcome standing for all the
    model calls (their costs and tokens summed) for the response headers."""
    from gateway.codecs import openai_responses
    import store.files as sf
    resp, queries, sources, outcomes = await complete(resources.chat, resources.vector_stores,
                                                      account_id, req, fs)
    total = dataclasses.replace(
        outcomes[-1], cost_micros=sum(o.cost_micros for o in outcomes),
        tokens_in=sum(o.tokens_in for o in outcomes), tokens_out=sum(o.tokens_out for o in outcomes),
        estimated=any(o.estimated for o in outcomes))
    resp = dataclasses.replace(resp, usage=c.Usage(input_tokens=total.tokens_in,
                                                   output_tokens=total.tokens_out))
    payload = openai_responses.from_canonical_response(
        resp, model=total.model, response_id=response_id, created_at=created_at,
        request_echo=request_echo)
    names = await resources.writer.call(sf.filenames, list(set(sources.values())))
    return decorate(payload, fs, queries, sources, names), total
