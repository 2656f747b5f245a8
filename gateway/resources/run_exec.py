"""Executing one run: model steps through the gateway's chat path until the run
completes, needs the client's function outputs (requires_action), or ends otherwise.

Each model call is one admitted, billed chat request (chat.py). `file_search` calls are
answered here from the caller's vector stores and the loop goes on; function calls stop
the run at requires_action with the round-trip kept on the run (`_turns`), so
submit_tool_outputs can resume it. Every state change is written first and then
published as an Assistants stream event.
"""
from __future__ import annotations

import base64
import json
import mimetypes
import time
from typing import Any

import store.assistants as sa
from gateway import canonical as c
from gateway import errors
import gateway.resources.run_build as rb
from gateway.resources.assistants import new_id, public


def _usage(outcome) -> dict:
    return {"prompt_tokens": outcome.tokens_in, "completion_tokens": outcome.tokens_out,
            "total_tokens": outcome.tokens_in + outcome.tokens_out}


def _add(a: dict | None, b: dict) -> dict:
    a = a or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {k: a[k] + b[k] for k in a}


class Execution:
    """One pass of a run (from queued to its next resting state)."""

    def __init__(self, runs, account_id: str, run: dict) -> None:
        self.runs = runs                  # the Runs service: store, events, collaborators
        self.w = runs.writer
        self.account = account_id
        self.run = run

    async def set_run(self, patch: dict, event: str | None = None, *,
                      expect: tuple[str, ...] | None = None) -> bool:
        got = await self.w.call(sa.update, sa.Run, self.run["id"], self.account, patch, expect=expect)
        if got is None:
            return False
        self.run = got
        if event:
            self.runs.events.publish(self.run["id"], event, public(got))
        return True

    async def _step(self, details: dict, status: str = "in_progress") -> dict:
        now = time.time()
        step = {"id": new_id("step_"), "object": "thread.run.step", "created_at": int(now),
                "_t": now, "run_id": self.run["id"], "assistant_id": self.run["assistant_id"],
                "thread_id": self.run["thread_id"], "type": details["type"], "status": status,
                "cancelled_at": None, "completed_at": int(now) if status == "completed" else None,
                "expired_at": None, "failed_at": None, "last_error": None,
                "step_details": details, "usage": None, "metadata": {}}
        await self.w.call(sa.insert, sa.RunStep, [step], self.account, self.run["id"])
        self.runs.events.publish(self.run["id"], "thread.run.step.created", public(step))
        if status == "in_progress":
            self.runs.events.publish(self.run["id"], "thread.run.step.in_progress", public(step))
        else:
            self.runs.events.publish(self.run["id"], "thread.run.step.completed", public(step))
        return step

    async def _set_step(self, step: dict, patch: dict, event: str | None) -> dict:
        step = await self.w.call(sa.update, sa.RunStep, step["id"], self.account, patch)
        if event:
            self.runs.events.publish(self.run["id"], event, public(step))
        return step

    async def _history(self) -> list[c.Message]:
        msgs = await self.w.call(sa.all_of, sa.ThreadMessage, self.account, self.run["thread_id"])
        images: dict[str, tuple[str, str]] = {}
        for m in msgs:
            for p in m["content"]:
                if p["type"] == "image_file" and m["role"] == "user":
                    fid = p["image_file"]["file_id"]
                    row, data = await self.runs.files.read_bytes(self.account, fid)
                    mime = mimetypes.guess_type(row.filename)[0] or "image/png"
                    images[fid] = (base64.b64encode(data).decode(), mime)
        return [rb.message_of(m, images) for m in msgs if m.get("run_id") != self.run["id"]
                or m["role"] == "user"]

    async def execute(self) -> None:
        now = int(time.time())
        patch = {"status": "in_progress"}
        if not self.run.get("started_at"):
            patch["started_at"] = now
        if not await self.set_run(patch, "thread.run.in_progress", expect=("queued",)):
            return
        for _ in range(self.runs.max_steps):
            if not await self._model_step():
                return
        await self.set_run({"status": "incomplete", "incomplete_details": {
            "reason": "max_steps"}, "completed_at": int(time.time())}, "thread.run.incomplete")

    async def _model_step(self) -> bool:
        """One model call; True when the loop should call the model again."""
        req = rb.build_request(self.run, await self._history(), self.run.get("_turns", []))
        msg: dict[str, Any] = {}
        step: dict[str, Any] = {}
        pending: list[str] = []

        def on_event(ev: c.StreamEvent) -> None:
            if isinstance(ev, c.TextDelta) and ev.text:
                pending.append(ev.text)
                if msg:
                    self._delta(msg, ev.text)

        async def open_message() -> None:
            now = time.time()
            msg.update({"id": new_id("msg_"), "object": "thread.message", "created_at": int(now),
                        "_t": now, "thread_id": self.run["thread_id"], "status": "in_progress",
                        "incomplete_details": None, "completed_at": None, "incomplete_at": None,
                        "role": "assistant", "content": [], "assistant_id": self.run["assistant_id"],
                        "run_id": self.run["id"], "attachments": [], "metadata": {}})
            step.update(await self._step({"type": "message_creation",
                                          "message_creation": {"message_id": msg["id"]}}))
            await self.w.call(sa.insert, sa.ThreadMessage, [msg], self.account, self.run["thread_id"])
            self.runs.events.publish(self.run["id"], "thread.message.created", public(msg))
            self.runs.events.publish(self.run["id"], "thread.message.in_progress", public(msg))

        # Text is streamed as it arrives only once the message exists; the message is
        # opened up front unless the model may answer with tool calls instead.
        if not req.tools or (req.tool_choice is not None and req.tool_choice.mode == "none"):
            await open_message()
        resp, outcome = await self.runs.chat(self.account, req, on_event)
        usage = _usage(outcome)
        await self.set_run({"usage": _add(self.run.get("usage"), usage)})
        calls = resp.message.tool_calls
        text = resp.message.text
        if calls:
            if msg:
                await self._finish_message(msg, step, text, usage)
            return await self._tool_calls(calls, usage)
        if not msg:
            await open_message()
            if text:
                self._delta(msg, text)
        await self._finish_message(msg, step, text, usage)
        if resp.finish_reason == "length":
            await self.set_run({"status": "incomplete", "incomplete_details": {
                "reason": "max_completion_tokens"}, "incomplete_at": int(time.time())},
                "thread.run.incomplete")
        else:
            await self.set_run({"status": "completed", "completed_at": int(time.time())},
                               "thread.run.completed", expect=("in_progress",))
        return False

    def _step_delta(self, step: dict, tool_call: dict) -> None:
        self.runs.events.publish(self.run["id"], "thread.run.step.delta", {
            "id": step["id"], "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}}})

    def _delta(self, msg: dict, text: str) -> None:
        self.runs.events.publish(self.run["id"], "thread.message.delta", {
            "id": msg["id"], "object": "thread.message.delta", "delta": {"content": [
                {"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]}})

    async def _finish_message(self, msg: dict, step: dict, text: str, usage: dict) -> None:
        annotations = rb.annotate(text, self.run.get("_sources", {}))
        now = int(time.time())
        done = await self.w.call(sa.update, sa.ThreadMessage, msg["id"], self.account, {
            "status": "completed", "completed_at": now,
            "content": [{"type": "text", "text": {"value": text, "annotations": annotations}}]})
        self.runs.events.publish(self.run["id"], "thread.message.completed", public(done))
        await self._set_step(step, {"status": "completed", "completed_at": now, "usage": usage},
                             "thread.run.step.completed")

    async def _tool_calls(self, calls: tuple[c.ToolCallPart, ...], usage: dict) -> bool:
        turns = list(self.run.get("_turns", []))
        turns.append({"role": "assistant", "calls": [
            {"id": k.id, "name": k.name, "arguments": k.arguments} for k in calls]})
        sources = dict(self.run.get("_sources", {}))
        hosted = any(t["type"] == "file_search" for t in self.run["tools"])
        to_search = [k for k in calls if hosted and k.name == "file_search"]
        functions = [{"id": k.id, "type": "function", "function": {
            "name": k.name, "arguments": k.arguments, "output": None}}
            for k in calls if not (hosted and k.name == "file_search")]
        if to_search:
            # Shown while it runs, as OpenAI does: the step opens with its calls (a
            # step delta each, which the SDK's on_tool_call_created hears), then
            # completes with what each search found.
            step = await self._step({"type": "tool_calls", "tool_calls": [
                {"id": k.id, "type": "file_search", "file_search": {}} for k in to_search]})
            for i, k in enumerate(to_search):
                self._step_delta(step, {"index": i, "id": k.id, "type": "file_search",
                                        "file_search": {}})
            searches = []
            for k in to_search:
                call_no = len({s.split(":")[0] for s in sources})
                results = await self._search(k.arguments)
                for i, r in enumerate(results):
                    sources[f"{call_no}:{i}"] = r["file_id"]
                turns.append({"role": "tool", "tool_call_id": k.id,
                              "output": rb.search_result_text(call_no, results)})
                searches.append({"id": k.id, "type": "file_search", "file_search": {
                    "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
                    "results": [{"file_id": r["file_id"], "file_name": r["filename"],
                                 "score": r["score"]} for r in results]}})
            await self.set_run({"_turns": turns, "_sources": sources})
            await self._set_step(step, {
                "status": "completed", "completed_at": int(time.time()), "usage": usage,
                "step_details": {"type": "tool_calls", "tool_calls": searches}},
                "thread.run.step.completed")
        else:
            await self.set_run({"_turns": turns, "_sources": sources})
        if not functions:
            return True
        step = await self._step({"type": "tool_calls", "tool_calls": functions})
        await self.set_run({
            "status": "requires_action", "_step": step["id"],
            "expires_at": int(time.time()) + self.runs.action_ttl,
            "required_action": {"type": "submit_tool_outputs", "submit_tool_outputs": {
                "tool_calls": [{"id": f["id"], "type": "function", "function": {
                    "name": f["function"]["name"], "arguments": f["function"]["arguments"]}}
                    for f in functions]}}}, "thread.run.requires_action", expect=("in_progress",))
        return False

    async def _search(self, arguments: str) -> list[dict]:
        try:
            query = json.loads(arguments).get("query")
        except (json.JSONDecodeError, AttributeError):
            query = None
        if not isinstance(query, str) or not query.strip():
            query = arguments or "?"
        ids = self.run.get("_vector_store_ids") or []
        if not ids:
            return []
        n = next((t["file_search"]["max_num_results"] for t in self.run["tools"]
                  if t["type"] == "file_search"), 10)
        try:
            return await self.runs.vector_stores.search(self.account, ids, [query], max_results=n)
        except errors.NotFound:
            return []    # a store deleted since the run began: search what is left (none)
