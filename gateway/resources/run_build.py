"""From an assistant, a thread and a run to the canonical chat Request a run step sends
(pure apart from reading image files, which the caller does), and citation markers back
to `file_citation` annotations."""
from __future__ import annotations

import re
from typing import Any

from gateway import canonical as c
from gateway import errors, tokenizer

FILE_SEARCH = c.Tool(
    "file_search",
    "Search the files attached to this assistant and thread. Pass a short keyword query. "
    "Results are marked like 【0:1†name】; cite a result by copying its marker after the "
    "sentence that uses it.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})

_MARKER = re.compile(r"【(\d+):(\d+)†[^】]*】")


def tools_of(tools: list[dict]) -> tuple[c.Tool, ...]:
    out = []
    for t in tools:
        if t["type"] == "function":
            fn = t["function"]
            out.append(c.Tool(fn["name"], fn.get("description"), fn["parameters"]))
        elif t["type"] == "file_search":
            out.append(FILE_SEARCH)
    return tuple(out)


def tool_choice_of(v: Any, tools: tuple[c.Tool, ...]) -> c.ToolChoice | None:
    if v is None or v == "auto":
        return None
    if v in ("none", "required"):
        return c.ToolChoice(v)
    name = None
    if isinstance(v, dict) and v.get("type") == "function":
        name = (v.get("function") or {}).get("name")
    elif isinstance(v, dict) and v.get("type") == "file_search":
        name = "file_search"
    if not name or all(t.name != name for t in tools):
        raise errors.InvalidRequest("tool_choice must be none, auto, required or name one of "
                                    "the run's tools", field="tool_choice")
    return c.ToolChoice("tool", name)


def format_of(v: Any) -> c.ResponseFormat | None:
    if not isinstance(v, dict) or v.get("type") == "text":
        return None
    if v["type"] == "json_object":
        return c.ResponseFormat("json_object")
    js = v["json_schema"]
    return c.ResponseFormat("json_schema", js["schema"], js.get("name"), js.get("strict"))


def message_of(msg: dict, images: dict[str, tuple[str, str]]) -> c.Message:
    """A thread message as canonical; `images` maps image file ids to (b64, media type)."""
    parts: list[c.Part] = []
    for p in msg["content"]:
        if p["type"] == "text":
            parts.append(c.TextPart(p["text"]["value"]))
        elif p["type"] == "image_url" and msg["role"] == "user":
            parts.append(c.ImagePart(url=p["image_url"]["url"], detail=p["image_url"].get("detail")))
        elif p["type"] == "image_file" and msg["role"] == "user":
            data, mime = images[p["image_file"]["file_id"]]
            parts.append(c.ImagePart(data_b64=data, media_type=mime))
    return c.Message(msg["role"], tuple(parts) or (c.TextPart(""),))


def turn_messages(turns: list[dict]) -> list[c.Message]:
    """The run's own tool round-trips (kept on the run between steps)."""
    out = []
    for t in turns:
        if t["role"] == "assistant":
            out.append(c.Message("assistant", tuple(
                c.ToolCallPart(k["id"], k["name"], k["arguments"]) for k in t["calls"])))
        else:
            out.append(c.Message("tool", (c.ToolResultPart(t["tool_call_id"],
                                                            (c.TextPart(t["output"]),)),)))
    return out


def build_request(run: dict, history: list[c.Message], turns: list[dict]) -> c.Request:
    system = "\n\n".join(s for s in (run.get("instructions"), run.get("_additional")) if s)
    tools = tools_of(run["tools"])
    strategy = run.get("truncation_strategy") or {"type": "auto"}
    if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
        history = history[-strategy["last_messages"]:]
    msgs = ([c.Message("system", (c.TextPart(system),))] if system else []) + history
    limit = run.get("max_prompt_tokens")
    req = _request(run, msgs, turns, tools)
    # Drop the oldest thread messages until the prompt fits max_prompt_tokens.
    while limit and tokenizer.count_request(req) > limit and len(history) > 1:
        history = history[1:]
        msgs = ([c.Message("system", (c.TextPart(system),))] if system else []) + history
        req = _request(run, msgs, turns, tools)
    return req


def _request(run: dict, msgs: list[c.Message], turns: list[dict], tools) -> c.Request:
    left = None
    if run.get("max_completion_tokens"):
        left = max(1, run["max_completion_tokens"] - (run.get("usage") or {}).get("completion_tokens", 0))
    return c.Request(model=run["model"], messages=tuple(msgs + turn_messages(turns)),
                     max_tokens=left, temperature=run.get("temperature"), top_p=run.get("top_p"),
                     tools=tools, tool_choice=tool_choice_of(run.get("tool_choice"), tools),
                     parallel_tool_calls=run.get("parallel_tool_calls"),
                     response_format=format_of(run.get("response_format")), stream=True,
                     include_usage=True)


def search_result_text(call_no: int, results: list[dict]) -> str:
    if not results:
        return "No results found."
    return "\n\n".join(f"【{call_no}:{i}†{r['filename']}】 {r['content'][0]['text']}"
                       for i, r in enumerate(results))


def annotate(text: str, sources: dict[str, str]) -> list[dict]:
    """file_citation annotations for the markers in `text` that name a real result;
    `sources` maps "call:index" to a file id."""
    out = []
    for m in _MARKER.finditer(text):
        fid = sources.get(f"{m.group(1)}:{m.group(2)}")
        if fid:
            out.append({"type": "file_citation", "text": m.group(0), "start_index": m.start(),
                        "end_index": m.end(), "file_citation": {"file_id": fid}})
    return out
