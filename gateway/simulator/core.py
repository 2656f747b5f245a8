"""The simulator's brain: a pure, deterministic function from a canonical Request to the
Response (or stream events) a well-behaved upstream model would give.

No I/O and no clock, so the same request always gets the same answer and tests can
predict it. Rules, in order (``prompt`` = text of the last user message that has text,
with ``[[sim ...]]`` fault directives removed, see faults.py):

1. Tool-result turn: when the last message is a tool result (role "tool", or a user
   message carrying ToolResultParts), the reply is ``"Tool result received: "`` + the
   result texts joined with ``" | "`` (all results of the trailing tool turn, in order).
   No tool is called again.
2. Tool calls: when ``req.tools`` is non-empty and tool_choice is not "none", the model
   calls tools if tool_choice is "required"/"tool", or the prompt names a tool, or
   contains the word "tool(s)". Called: the chosen tool for mode "tool"; otherwise every
   tool whose name appears in the prompt (all of them in parallel unless
   parallel_tool_calls is False, which keeps the first), falling back to the first tool.
   Ids are ``call_<hash>``; arguments are synthesised from the parameters schema (see
   ``synthesize``) as compact JSON. The reply then has no text; finish "tool_calls".
3. Text: if the prompt contains ``say: X`` (case-insensitive) the reply is exactly X, the
   rest of that line, stripped. Otherwise it is ``"Simulated reply to: "`` + the prompt
   with whitespace collapsed to single spaces. System messages change nothing.
4. Response format: json_object wraps the text as ``{"reply": text}``; json_schema
   replaces it with an instance synthesised from the schema.
5. Stop sequences cut the text before the first one found (finish stays "stop").
6. max_tokens: text longer than that (counted with gateway.tokenizer) is cut back to
   the longest whole-word prefix that fits (characters if even one word is too long) and
   finish becomes "length". Tool calls are never truncated.

7. Image output: when ``req.metadata["response_modalities"]`` contains "IMAGE" (the
   canonical hint, see canonical.py) and the reply is text, the assistant message also
   carries one PNG ImagePart from media.generate_images, a pure function of the prompt,
   the seed and the user's reference images (the last user message's inline images).
   Images have no stream event, so a stream of such a request carries the text only.

Usage is honest: input = tokenizer.count_request(req); output = the text plus every tool
call's name and arguments, each via tokenizer.count_text; nothing cached.

Schema synthesis (tool arguments and json_schema): object -> every property, recursively;
string -> the prompt's ``<prop>=<value>`` (quotes allowed) if present, else a sample
for a known ``format`` or ``"sim-<prop>"``; integer -> 42, number -> 42.0 (both clamped
to minimum/maximum, or taken from ``<prop>=<n>``); boolean -> true; enum/const -> the
first value; anyOf/oneOf -> the first non-null branch; array -> [] (minItems copies of
the item when required); $ref into #/$defs or #/definitions is followed.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from gateway import canonical as c
from gateway import tokenizer
from gateway.simulator.sim_inference import ocr_reply
from gateway.simulator.faults import Fault, last_user_text, parse_fault, strip_directives
from gateway.simulator.media import chat_images

__all__ = [
    "SimOptions", "Fault", "Plan", "SIM_MODELS", "parse_fault", "prompt_text", "plan",
    "reply_text", "synthesize", "response_id", "respond", "stream_events",
    "pauses", "split_at_disconnect",
]

# Model ids the HTTP simulator lists; it answers any model id it is sent.
SIM_MODELS = ("sim-small", "sim-medium", "sim-large")

_SAY_RE = re.compile(r"(?i)\bsay:[ \t]*([^\r\n]*)")
_TOOL_WORD_RE = re.compile(r"(?i)\btools?\b")
_FORMAT_SAMPLES = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_MAX_DEPTH = 16  # a recursive $ref must not recurse forever


@dataclass(frozen=True)
class SimOptions:
    """Defaults for one simulator instance; a request's Fault overrides them."""
    chunk_chars: int = 8
    chunk_delay: float = 0.0
    latency: float = 0.0


@dataclass(frozen=True)
class Plan:
    """What the simulated model says: final text, tool calls, and why it stopped."""
    text: str
    tool_calls: tuple[c.ToolCallPart, ...]
    finish: c.FinishReason


# ---------------------------------------------------------------- reading the prompt

def prompt_text(req: c.Request) -> str:
    return strip_directives(last_user_text(req))


def _trailing_tool_results(req: c.Request) -> list[c.ToolResultPart] | None:
    if not req.messages:
        return None
    last = req.messages[-1]
    if last.role == "user":
        found = [p for p in last.parts if isinstance(p, c.ToolResultPart)]
        return found or None
    if last.role != "tool":
        return None
    # OpenAI sends one "tool" message per parallel call: gather the whole turn.
    run: list[c.ToolResultPart] = []
    for m in reversed(req.messages):
        if m.role != "tool":
            break
        run[:0] = [p for p in m.parts if isinstance(p, c.ToolResultPart)]
    return run


def _names(name: str, text: str) -> bool:
    return re.search(r"(?<![\w])" + re.escape(name) + r"(?![\w])", text) is not None


# ---------------------------------------------------------------- schema synthesis

def _prompt_value(prop: str, prompt: str) -> str | None:
    m = re.search(r"(?<![\w-])" + re.escape(prop) + r"""=(?:"([^"]*)"|'([^']*)'|([^\s,;]+))""",
                  prompt)
    if m is None:
        return None
    if m.group(3) is not None:
        return m.group(3).rstrip(".!?)")
    return m.group(1) if m.group(1) is not None else m.group(2)


def _resolve(root: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for key in ref[2:].split("/"):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _clamp(x: float, schema: dict[str, Any]) -> float:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if isinstance(lo, (int, float)) and not isinstance(lo, bool) and x < lo:
        x = lo
    if isinstance(hi, (int, float)) and not isinstance(hi, bool) and x > hi:
        x = hi
    return x


def _string(schema: dict[str, Any], name: str, prompt: str) -> str:
    given = _prompt_value(name, prompt)
    s = given if given is not None else _FORMAT_SAMPLES.get(schema.get("format"), f"sim-{name}")
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    if isinstance(hi, int) and not isinstance(hi, bool) and hi >= 0:
        s = s[:hi]
    if isinstance(lo, int) and not isinstance(lo, bool) and len(s) < lo <= 10_000:
        s = s + "x" * (lo - len(s))
    return s


def _number(schema: dict[str, Any], name: str, prompt: str, integer: bool) -> int | float:
    given = _prompt_value(name, prompt)
    value: float = 42
    if given is not None:
        try:
            value = int(given) if integer else float(given)
        except ValueError:
            pass
        if value != value or value in (float("inf"), float("-inf")):
            value = 42
    value = _clamp(value, schema)
    # A whole number the prompt wrote without a point stays one: strict clients (Codex
    # parses its "number" fields into unsigned integers) reject 2000.0.
    whole = given is not None and given.lstrip("-").isdigit() and float(value).is_integer()
    return int(value) if integer or whole else float(value)


def synthesize(schema: Any, prompt: str = "", *, name: str = "value",
               _root: Any = None, _depth: int = 0) -> Any:
    """A JSON value matching ``schema`` (the subset real tool schemas use)."""
    if not isinstance(schema, dict) or _depth > _MAX_DEPTH:
        return None
    root = schema if _root is None else _root

    def sub(s: Any, n: str) -> Any:
        return synthesize(s, prompt, name=n, _root=root, _depth=_depth + 1)

    ref = schema.get("$ref")
    if isinstance(ref, str) and isinstance(root, dict):
        target = _resolve(root, ref)
        if isinstance(target, dict):
            return sub(target, name)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            pick = next((b for b in branches if isinstance(b, dict) and b.get("type") != "null"),
                        branches[0])
            return sub(pick, name)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        typ = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if typ == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {str(k): sub(v, str(k)) for k, v in props.items()}
    if typ == "array":
        n = schema.get("minItems")
        n = n if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 16 else 0
        return [sub(schema.get("items", {}), name) for _ in range(n)]
    if typ == "string":
        return _string(schema, name, prompt)
    if typ in ("integer", "number"):
        return _number(schema, name, prompt, typ == "integer")
    if typ == "boolean":
        given = (_prompt_value(name, prompt) or "").lower()
        return given != "false"
    return None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------- the plan

def response_id(req: c.Request) -> str:
    # Streaming flags and caller metadata must not change the id: a streamed and a
    # plain answer to the same prompt are the same answer.
    core = replace(req, stream=False, include_usage=False, metadata={}, user=None)
    return "chatcmpl-sim-" + hashlib.sha256(repr(core).encode()).hexdigest()[:24]


def _chosen_tools(req: c.Request, prompt: str) -> list[c.Tool]:
    choice = req.tool_choice or c.ToolChoice()
    if not req.tools or choice.mode == "none":
        return []
    if choice.mode == "tool":
        named = [t for t in req.tools if t.name == choice.name]
        return named or [c.Tool(choice.name or "tool")]
    mentioned = [t for t in req.tools if _names(t.name, prompt)]
    if not mentioned and (choice.mode == "required" or _TOOL_WORD_RE.search(prompt)):
        mentioned = [req.tools[0]]
    if req.parallel_tool_calls is False:
        mentioned = mentioned[:1]
    return mentioned


def _tool_calls(req: c.Request, prompt: str) -> tuple[c.ToolCallPart, ...]:
    rid = response_id(req)
    calls = []
    for i, tool in enumerate(_chosen_tools(req, prompt)):
        args = synthesize(tool.parameters, prompt)
        digest = hashlib.sha256(f"{rid}:{i}:{tool.name}".encode()).hexdigest()[:24]
        calls.append(c.ToolCallPart(f"call_{digest}", tool.name,
                                    _dumps(args if isinstance(args, dict) else {})))
    return tuple(calls)


def _base_text(req: c.Request, prompt: str) -> str:
    results = _trailing_tool_results(req)
    if results is not None:
        return "Tool result received: " + " | ".join(r.text for r in results)
    page = ocr_reply(req, prompt)   # the gateway's OCR through a vision chat model
    if page is not None:
        return page
    m = _SAY_RE.search(prompt)
    if m is not None:
        return m.group(1).strip()
    return "Simulated reply to: " + " ".join(prompt.split())


def _truncate(text: str, limit: int) -> str:
    """Longest prefix within ``limit`` tokens: whole words, else characters."""
    words = re.findall(r"\s*\S+", text)

    def fits(k: int, pieces: list[str]) -> bool:
        return tokenizer.count_text("".join(pieces[:k]).lstrip()) <= limit

    def longest(pieces: list[str]) -> int:
        lo, hi = 0, len(pieces)  # invariant: prefix lo fits (0 always does)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid, pieces):
                lo = mid
            else:
                hi = mid - 1
        return lo

    k = longest(words)
    if k > 0:
        return "".join(words[:k]).lstrip()
    first = list(words[0].lstrip()) if words else []
    return "".join(first[:longest(first)])


def plan(req: c.Request) -> Plan:
    prompt = prompt_text(req)
    if _trailing_tool_results(req) is None:
        calls = _tool_calls(req, prompt)
        if calls:
            return Plan("", calls, "tool_calls")
    text = _base_text(req, prompt)
    fmt = req.response_format
    if fmt is not None and fmt.kind == "json_object":
        text = json.dumps({"reply": text}, ensure_ascii=False)
    elif fmt is not None and fmt.kind == "json_schema":
        text = json.dumps(synthesize(fmt.schema, prompt), ensure_ascii=False)
    cuts = [text.find(s) for s in req.stop if s and s in text]
    if cuts:
        text = text[:min(cuts)]
    if req.max_tokens is not None and tokenizer.count_text(text) > req.max_tokens:
        return Plan(_truncate(text, req.max_tokens), (), "length")
    return Plan(text, (), "stop")


def reply_text(req: c.Request) -> str:
    """The assistant text the simulator answers ``req`` with ("" when it calls tools)."""
    return plan(req).text


# ---------------------------------------------------------------- responses and streams

def respond(req: c.Request, options: SimOptions = SimOptions()) -> c.Response:
    p = plan(req)
    parts: list[c.Part] = [c.TextPart(p.text)] if p.text else []
    parts.extend(p.tool_calls)
    if not p.tool_calls:
        parts.extend(chat_images(req, prompt_text(req)))
    out = tokenizer.count_text(p.text) + sum(
        tokenizer.count_text(t.name) + tokenizer.count_text(t.arguments) for t in p.tool_calls)
    usage = c.Usage(input_tokens=tokenizer.count_request(req), output_tokens=out)
    return c.Response(id=response_id(req), model=req.model,
                      message=c.Message("assistant", tuple(parts)),
                      finish_reason=p.finish, usage=usage)


def _chunks(s: str, n: int) -> list[str]:
    return [s[i:i + n] for i in range(0, len(s), n)]


def stream_events(req: c.Request, options: SimOptions = SimOptions(),
                  fault: Fault = Fault()) -> list[c.StreamEvent]:
    """The whole stream for ``req``; collect_stream of it equals respond(req)."""
    resp = respond(req, options)
    n = fault.chunk_chars or options.chunk_chars
    events: list[c.StreamEvent] = [c.StreamStart(resp.id, resp.model, resp.created)]
    index = 0
    for part in resp.message.parts:
        if isinstance(part, c.TextPart):
            events.extend(c.TextDelta(s) for s in _chunks(part.text, n))
        elif isinstance(part, c.ToolCallPart):
            events.append(c.ToolCallStart(index, part.id, part.name))
            events.extend(c.ToolCallDelta(index, s) for s in _chunks(part.arguments, n))
            index += 1
    events.append(c.Finish(resp.finish_reason))
    if not fault.no_usage and resp.usage is not None:
        events.append(c.UsageEvent(resp.usage))
    return events


def pauses(events: list[c.StreamEvent], chunk_delay: float) -> list[float]:
    """Seconds to wait before each event: chunk_delay between content fragments."""
    out, seen = [], False
    for ev in events:
        content = isinstance(ev, (c.TextDelta, c.ToolCallDelta))
        out.append(chunk_delay if content and seen else 0.0)
        seen = seen or content
    return out


def split_at_disconnect(events: list[c.StreamEvent],
                        fault: Fault) -> tuple[list[c.StreamEvent], bool]:
    """The events delivered before the fault's cut, and whether the stream is then cut."""
    cut = fault.disconnect_after
    if cut is None or cut >= len(events):
        return events, False
    return events[:cut], True
