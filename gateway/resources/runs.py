"""Runs: create (and create-and-run), list, retrieve, update, cancel,
submit_tool_outputs, steps, and the background work that executes them.

Runs execute in Prism's own nursery, not in the request that created them, so a client
that polls, streams or hangs up sees the same run. Streaming requests subscribe to the
run's events (RunEvents) before it starts. A restart never leaves a run in_progress:
at start-up runs found in_progress fail with a last_error saying so (each model call
they completed was settled when it ended; the interrupted call's hold is expired by the
start-up sweep, unbilled), cancelling ones become cancelled, queued ones run again.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import trio

import store.assistants as sa
from gateway import errors
from gateway.resources.assistants import _metadata, check_response_format, check_tools, new_id, public
from gateway.resources.run_exec import Execution

log = logging.getLogger("prism.resources")

TERMINAL_EVENTS = ("thread.run.completed", "thread.run.failed", "thread.run.cancelled",
                   "thread.run.expired", "thread.run.incomplete", "thread.run.requires_action")
RESTARTED = ("The gateway restarted while this run was in progress. Steps that finished were "
             "billed; the interrupted model call was not. Create a new run to continue.")


class RunEvents:
    """Fan-out of each run's events to the streams that asked for them."""

    def __init__(self) -> None:
        self._subs: dict[str, list[tuple[trio.MemorySendChannel, trio.MemoryReceiveChannel]]] = {}

    def subscribe(self, run_id: str) -> trio.MemoryReceiveChannel:
        send, receive = trio.open_memory_channel(math.inf)
        self._subs.setdefault(run_id, []).append((send, receive))
        return receive

    def unsubscribe(self, run_id: str, receive: trio.MemoryReceiveChannel) -> None:
        left = [(s, r) for s, r in self._subs.get(run_id, []) if r is not receive]
        if left:
            self._subs[run_id] = left
        else:
            self._subs.pop(run_id, None)
        receive.close()

    def publish(self, run_id: str, event: str, data: dict) -> None:
        for send, _ in self._subs.get(run_id, []):
            try:
                send.send_nowait((event, data))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


class Runs:
    def __init__(self, writer, assistants, vector_stores, files, chat, *, max_steps: int,
                 action_ttl: int = 600) -> None:
        self.writer = writer
        self.assistants = assistants
        self.vector_stores = vector_stores
        self.files = files
        self.chat = chat
        self.max_steps = max_steps
        self.action_ttl = action_ttl
        self.events = RunEvents()
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}

    # ------------------------------------------------------------ background

    async def run(self, takeover: bool = True, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run assistant runs until cancelled; with `takeover`, first end the runs a
        previous process left in progress or cancelling, and start its queued ones."""
        if takeover:
            await self._recover()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for run_id, account in await self.writer.call(sa.runs_in, ("queued",)) \
                    if takeover else ():
                self.start(account, run_id)
            task_status.started()
            while True:
                await self._expire()
                await trio.sleep(30)

    async def _recover(self) -> None:
        restarted = {"code": "server_error", "message": RESTARTED}
        for run_id, account in await self.writer.call(sa.runs_in, ("in_progress",)):
            if await self.writer.call(sa.update, sa.Run, run_id, account, {
                    "status": "failed", "failed_at": int(time.time()), "last_error": restarted},
                    expect=("in_progress",)):
                await self.writer.call(sa.end_open_children, run_id, account, "failed",
                                       int(time.time()), restarted)
        for run_id, account in await self.writer.call(sa.runs_in, ("cancelling",)):
            if await self.writer.call(sa.update, sa.Run, run_id, account,
                                      {"status": "cancelled", "cancelled_at": int(time.time())},
                                      expect=("cancelling",)):
                await self.writer.call(sa.end_open_children, run_id, account, "cancelled",
                                       int(time.time()))

    async def _expire(self) -> None:
        now = int(time.time())
        for run_id, account in await self.writer.call(sa.runs_in, ("requires_action",)):
            run = await self.writer.call(sa.get, sa.Run, run_id, account)
            if run and run.get("expires_at") and run["expires_at"] < now:
                got = await self.writer.call(sa.update, sa.Run, run_id, account, {
                    "status": "expired", "expired_at": now, "required_action": None},
                    expect=("requires_action",))
                if got:
                    await self.writer.call(sa.end_open_children, run_id, account, "expired", now)
                    self.events.publish(run_id, "thread.run.expired", public(got))

    def start(self, account_id: str, run_id: str) -> None:
        assert self._nursery is not None, "Runs.run is not running"
        self._nursery.start_soon(self._execute, account_id, run_id)

    async def _execute(self, account_id: str, run_id: str) -> None:
        run = await self.writer.call(sa.get, sa.Run, run_id, account_id)
        if run is None:
            return
        ex = Execution(self, account_id, run)
        with trio.CancelScope() as scope:
            self._scopes[run_id] = scope
            try:
                await ex.execute()
            except errors.PrismError as err:
                with trio.CancelScope(shield=True):
                    await self._fail(ex, {"code": _code(err), "message": err.message})
            except Exception:
                log.exception("run %s failed", run_id)
                with trio.CancelScope(shield=True):
                    await self._fail(ex, {"code": "server_error", "message":
                                          "The run failed inside Prism; see the gateway log"})
            finally:
                self._scopes.pop(run_id, None)
        if scope.cancelled_caught:
            with trio.CancelScope(shield=True):
                if await ex.set_run({"status": "cancelled", "cancelled_at": int(time.time())},
                                    "thread.run.cancelled", expect=("cancelling",)):
                    await self.writer.call(sa.end_open_children, run_id, account_id,
                                           "cancelled", int(time.time()))

    async def _fail(self, ex: Execution, error: dict) -> None:
        if await ex.set_run({"status": "failed", "failed_at": int(time.time()),
                             "last_error": error}, "thread.run.failed",
                            expect=("in_progress", "queued")):
            await self.writer.call(sa.end_open_children, ex.run["id"], ex.account, "failed",
                                   int(time.time()), error)

    # ------------------------------------------------------------ API

    async def _run_fields(self, account_id: str, asst: dict, thread: dict, body: dict) -> dict:
        tools = check_tools(body["tools"]) if body.get("tools") is not None else asst["tools"]
        for key, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1)):
            v = body.get(key)
            if v is not None and (not isinstance(v, (int, float)) or not lo <= v <= hi):
                raise errors.InvalidRequest(f"{key} must be between {lo} and {hi}", field=key)
        for key in ("max_prompt_tokens", "max_completion_tokens"):
            v = body.get(key)
            if v is not None and (type(v) is not int or v < 256):
                raise errors.InvalidRequest(f"{key} must be an integer of at least 256", field=key)
        ts = body.get("truncation_strategy")
        if ts is not None and (not isinstance(ts, dict) or ts.get("type") not in ("auto", "last_messages")
                               or (ts["type"] == "last_messages" and type(ts.get("last_messages")) is not int)):
            raise errors.InvalidRequest("truncation_strategy must be auto or last_messages with "
                                        "a count", field="truncation_strategy")
        stores = [*((asst.get("tool_resources") or {}).get("file_search", {}).get("vector_store_ids", [])),
                  *((thread.get("tool_resources") or {}).get("file_search", {}).get("vector_store_ids", []))]
        now = time.time()
        run = {"id": new_id("run_"), "object": "thread.run", "created_at": int(now), "_t": now,
               "thread_id": thread["id"], "assistant_id": asst["id"], "status": "queued",
               "required_action": None, "last_error": None, "expires_at": int(now) + 3600,
               "started_at": None, "cancelled_at": None, "failed_at": None, "completed_at": None,
               "incomplete_details": None,
               "model": body.get("model") or asst["model"],
               "instructions": body["instructions"] if body.get("instructions") is not None
               else asst.get("instructions"),
               "_additional": body.get("additional_instructions"),
               "tools": tools, "metadata": _metadata(body.get("metadata")), "usage": None,
               "temperature": body.get("temperature", asst.get("temperature")),
               "top_p": body.get("top_p", asst.get("top_p")),
               "max_prompt_tokens": body.get("max_prompt_tokens"),
               "max_completion_tokens": body.get("max_completion_tokens"),
               "truncation_strategy": ts or {"type": "auto", "last_messages": None},
               "response_format": check_response_format(body.get("response_format",
                                                                 asst.get("response_format"))),
               "tool_choice": body.get("tool_choice", "auto"),
               "parallel_tool_calls": body.get("parallel_tool_calls", True),
               "_vector_store_ids": list(dict.fromkeys(stores)), "_turns": [], "_sources": {}}
        if not isinstance(run["model"], str):
            raise errors.InvalidRequest("model must be a string", field="model")
        from gateway.resources.run_build import tool_choice_of, tools_of
        tool_choice_of(run["tool_choice"], tools_of(tools))     # 400 now, not a failed run
        return run

    async def create(self, account_id: str, thread_id: str, body: dict,
                     thread: dict | None = None) -> tuple[dict, trio.MemoryReceiveChannel | None]:
        """A queued run, started; with `stream` the caller gets its event channel."""
        asst_id = body.get("assistant_id")
        if not isinstance(asst_id, str):
            raise errors.InvalidRequest("assistant_id is required", field="assistant_id")
        asst = await self.assistants.get(sa.Assistant, account_id, asst_id)
        thread = thread or await self.assistants.get(sa.Thread, account_id, thread_id)
        if await self.writer.call(sa.active_run, thread_id):
            raise errors.InvalidRequest("This thread already has an active run", code="run_active")
        run = await self._run_fields(account_id, asst, thread, body)
        extra = body.get("additional_messages") or []
        if not isinstance(extra, list):
            raise errors.InvalidRequest("additional_messages must be a list", field="additional_messages")
        msgs = [await self.assistants.message_object(account_id, thread, m) for m in extra]
        if msgs:
            await self.writer.call(sa.insert, sa.ThreadMessage, msgs, account_id, thread_id)
        await self.writer.call(sa.insert, sa.Run, [run], account_id, thread_id)
        channel = self.events.subscribe(run["id"]) if body.get("stream") else None
        self.events.publish(run["id"], "thread.run.created", public(run))
        self.events.publish(run["id"], "thread.run.queued", public(run))
        self.start(account_id, run["id"])
        return run, channel

    async def get(self, account_id: str, thread_id: str, run_id: str) -> dict:
        return await self.assistants.get(sa.Run, account_id, run_id, thread_id)

    async def update(self, account_id: str, thread_id: str, run_id: str, body: dict) -> dict:
        await self.get(account_id, thread_id, run_id)
        return await self.writer.call(sa.update, sa.Run, run_id, account_id,
                                      {"metadata": _metadata(body.get("metadata"))})

    async def cancel(self, account_id: str, thread_id: str, run_id: str) -> dict:
        await self.get(account_id, thread_id, run_id)
        now = int(time.time())
        # Not executing (waiting for tool outputs, or not started): cancelled at once.
        idle = run_id not in self._scopes
        got = await self.writer.call(
            sa.update, sa.Run, run_id, account_id,
            {"status": "cancelled", "cancelled_at": now, "required_action": None} if idle
            else {"status": "cancelling"}, expect=("queued", "in_progress", "requires_action"))
        if got is None:
            raise errors.InvalidRequest("Cannot cancel a run that has already ended",
                                        code="run_not_active")
        if idle:
            await self.writer.call(sa.end_open_children, run_id, account_id, "cancelled", now)
        self.events.publish(run_id, "thread.run.cancelled" if idle else "thread.run.cancelling",
                            public(got))
        if not idle and run_id in self._scopes:
            self._scopes[run_id].cancel()
        return got

    async def submit_tool_outputs(self, account_id: str, thread_id: str, run_id: str,
                                  body: dict) -> tuple[dict, trio.MemoryReceiveChannel | None]:
        run = await self.get(account_id, thread_id, run_id)
        if run["status"] != "requires_action":
            raise errors.InvalidRequest("This run is not waiting for tool outputs",
                                        code="run_not_requires_action")
        outputs = body.get("tool_outputs")
        wanted = {k["id"] for k in run["required_action"]["submit_tool_outputs"]["tool_calls"]}
        if not isinstance(outputs, list) or not all(
                isinstance(o, dict) and isinstance(o.get("output"), str) for o in outputs) \
                or {o.get("tool_call_id") for o in outputs} != wanted:
            raise errors.InvalidRequest("tool_outputs must give one string output for each of "
                                        f"the tool calls {sorted(wanted)}", field="tool_outputs")
        by_id = {o["tool_call_id"]: o["output"] for o in outputs}
        turns = run["_turns"] + [{"role": "tool", "tool_call_id": i, "output": by_id[i]}
                                 for i in sorted(wanted, key=list(by_id).index)]
        got = await self.writer.call(sa.update, sa.Run, run_id, account_id, {
            "status": "queued", "required_action": None, "_turns": turns},
            expect=("requires_action",))
        if got is None:
            raise errors.InvalidRequest("This run is not waiting for tool outputs",
                                        code="run_not_requires_action")
        step = await self.writer.call(sa.get, sa.RunStep, run["_step"], account_id)
        if step is not None:
            calls = [{**k, "function": {**k["function"], "output": by_id.get(k["id"])}}
                     for k in step["step_details"]["tool_calls"]]
            await self.writer.call(sa.update, sa.RunStep, step["id"], account_id, {
                "status": "completed", "completed_at": int(time.time()),
                "step_details": {"type": "tool_calls", "tool_calls": calls}})
        channel = self.events.subscribe(run_id) if body.get("stream") else None
        self.events.publish(run_id, "thread.run.queued", public(got))
        self.start(account_id, run_id)
        return got, channel

    async def create_thread_and_run(self, account_id: str, body: dict):
        thread = await self.assistants.create_thread(account_id, body.get("thread") or {})
        if body.get("tool_resources") is not None:
            thread = await self.assistants.update_thread(account_id, thread["id"],
                                                         {"tool_resources": body["tool_resources"]})
        run, channel = await self.create(account_id, thread["id"], body, thread)
        return thread, run, channel


def _code(err: errors.PrismError) -> str:
    if err.status == 429:
        return "rate_limit_exceeded"
    if isinstance(err, errors.ClientError):
        return "invalid_prompt"
    return "server_error"


def public_list(objs: list[dict]) -> list[dict[str, Any]]:
    return [public(o) for o in objs]
