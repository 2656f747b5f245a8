"""A2A: the agents of `[[agents]]` behind Prism's JSON-RPC endpoint (`POST /a2a[/<agent>]`).

Local agents run here (gateway.a2a.local) as tasks kept in the store: `message/send`
waits for the answer unless `configuration.blocking` is false, in which case the task
runs in this service's nursery and `tasks/get` / `tasks/cancel` find it there; a
`message/stream` streams the task's events as they happen. Remote agents are fronted
(gateway.a2a.remote): their card is fetched and cached, calls proxied with the agent's
own credentials and timeout, and charged `price_usd` per call.

Every task belongs to the account that created it; another account's id is unknown.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, AsyncIterator

import trio

import store
from gateway import errors
from gateway.a2a import wire
from gateway.a2a.local import Chat, run_local, skills_of
from gateway.a2a.remote import RemoteAgents
from gateway.config_protocols import AgentConfig
from gateway.mcp.hub import Caller, McpHub

log = logging.getLogger("prism.a2a")


class A2AService:
    def __init__(self, agents: tuple[AgentConfig, ...], *, writer: Any, chat: Chat,
                 hub: McpHub | None, remote: RemoteAgents) -> None:
        self.agents = {a.id: a for a in agents}
        self._writer = writer
        self._chat = chat
        self._hub = hub
        self.remote = remote
        self._running: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await self.remote.aclose()

    # ------------------------------------------------------------ discovery

    def agent(self, agent_id: str | None) -> AgentConfig:
        if agent_id is None:
            if not self.agents:
                raise errors.NotFound("No A2A agents are configured on this gateway")
            return next(iter(self.agents.values()))
        try:
            return self.agents[agent_id]
        except KeyError:
            raise errors.NotFound(f"Unknown agent {agent_id!r}") from None

    def card(self, base_url: str, agent_id: str | None = None) -> dict[str, Any]:
        if agent_id is None:
            skills = [s for a in self.agents.values() for s in skills_of(a)]
            return wire.card(name="Prism", description="Prism gateway agents: " + (
                ", ".join(self.agents) or "none configured"), url=f"{base_url}/a2a",
                version="1", skills=skills)
        a = self.agent(agent_id)
        return wire.card(name=a.name or a.id, description=a.description or f"Agent {a.id}",
                         url=f"{base_url}/a2a/{a.id}", version="1", skills=skills_of(a))

    def listing(self) -> list[dict[str, Any]]:
        return [{"id": a.id, "object": "agent", "kind": a.kind, "name": a.name or a.id,
                 "description": a.description, "model": a.model or None,
                 "url": f"/a2a/{a.id}"} for a in self.agents.values()]

    # ------------------------------------------------------------ JSON-RPC

    async def call(self, caller: Caller, agent_id: str | None, method: str,
                   params: dict[str, Any]) -> dict[str, Any]:
        agent = self.agent(agent_id)
        if agent.kind == "remote" and method in ("message/send", "tasks/get", "tasks/cancel"):
            return await self.remote.call(agent, caller, method, params)
        if method == "message/send":
            return await self._send(agent, caller, wire.send_params(params))
        if method == "tasks/get":
            task = await self._task(caller, wire.task_id_param(params))
            history = params.get("historyLength")
            return wire.trimmed(task, history if isinstance(history, int) else None)
        if method == "tasks/cancel":
            return await self._cancel(caller, wire.task_id_param(params))
        raise wire.RpcError(wire.METHOD_NOT_FOUND, f"Method {method!r} is not supported")

    async def stream(self, caller: Caller, agent_id: str | None,
                     params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        agent = self.agent(agent_id)
        if agent.kind == "remote":
            async for event in self.remote.stream(agent, caller, params):
                yield event
            return
        sent = wire.send_params(params)
        task = await self._create(agent, caller, sent)
        yield task
        async for event in self._guarded_events(agent, caller, task):
            yield event

    # ------------------------------------------------------------ local tasks

    async def _save(self, caller: Caller, agent: AgentConfig, task: dict[str, Any],
                    cost: int = 0) -> bool:
        with trio.CancelScope(shield=True):
            return await self._writer.call(store.save_a2a_task, task, account_id=caller.account_id,
                                           agent_id=agent.id, cost_micros=cost)

    async def _create(self, agent: AgentConfig, caller: Caller, sent) -> dict[str, Any]:
        if sent.message.task_id:
            raise wire.RpcError(wire.UNSUPPORTED, "Continuing an existing task is not "
                                "supported: send a new message (optionally with its contextId)")
        context_id = sent.message.context_id or uuid.uuid4().hex
        task_id = uuid.uuid4().hex
        first = {**wire.dump_message(sent.message), "taskId": task_id, "contextId": context_id}
        task = wire.new_task(task_id, context_id, first)
        await self._save(caller, agent, task)
        return task

    async def _events(self, agent: AgentConfig, caller: Caller,
                      task: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run the task to a final state, saving each state and yielding each event. The
        run itself sits in a cancel scope that tasks/cancel can reach; no yield happens
        inside it, so a streaming client that leaves simply stops the generator."""
        scope = trio.CancelScope()
        self._running[task["id"]] = scope
        try:
            task["status"] = wire.status("working")
            await self._save(caller, agent, task)
            yield wire.status_event(task, final=False)
            answer, cost, failure = None, 0, None
            with scope:
                try:
                    answer, cost = await run_local(agent, wire.text_of_dict(task["history"][0]),
                                                   caller, chat=self._chat, hub=self._hub)
                except errors.PrismError as err:
                    failure = err
        finally:
            self._running.pop(task["id"], None)
        if answer is None and failure is None:
            # Cancelled by tasks/cancel, which already saved the state.
            task["status"] = wire.status("canceled")
            await self._save(caller, agent, task)
            yield wire.status_event(task, final=True)
            return
        if failure is not None:
            reply = wire.agent_message(f"{failure.type_name}: {failure.message}",
                                       task_id=task["id"], context_id=task["contextId"])
            task["status"] = wire.status("failed", reply)
            await self._save(caller, agent, task)
            yield wire.status_event(task, final=True)
            return
        artifact = wire.text_artifact(answer)
        task["artifacts"].append(artifact)
        reply = wire.agent_message(answer, task_id=task["id"], context_id=task["contextId"])
        task["history"].append(reply)
        task["status"] = wire.status("completed", reply)
        if not await self._save(caller, agent, task, cost):
            task["status"] = wire.status("canceled")   # a cancel won the race
        yield wire.artifact_event(task, artifact)
        yield wire.status_event(task, final=True)

    async def _execute(self, agent: AgentConfig, caller: Caller,
                       task: dict[str, Any]) -> dict[str, Any]:
        async for _ in self._guarded_events(agent, caller, task):
            pass
        return task

    async def _guarded_events(self, agent: AgentConfig, caller: Caller,
                              task: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """_events, and a task left unfinished (the streaming client hung up, the
        gateway is stopping) is saved as canceled rather than left 'working'."""
        try:
            async for event in self._events(agent, caller, task):
                yield event
        finally:
            if task["status"]["state"] not in wire.FINAL:
                task["status"] = wire.status("canceled")
                await self._save(caller, agent, task)

    async def _send(self, agent: AgentConfig, caller: Caller, sent) -> dict[str, Any]:
        task = await self._create(agent, caller, sent)
        blocking = sent.configuration is None or sent.configuration.blocking is not False
        if blocking or self._nursery is None:
            return await self._execute(agent, caller, task)
        started = trio.Event()

        async def background() -> None:
            started.set()
            await self._execute(agent, caller, task)
        self._nursery.start_soon(background)
        await started.wait()
        return {**task, "status": wire.status("working")}

    async def _task(self, caller: Caller, task_id: str) -> dict[str, Any]:
        found = await self._writer.call(store.get_a2a_task, task_id, caller.account_id)
        if found is None:
            raise wire.RpcError(wire.TASK_NOT_FOUND, f"Task {task_id!r} not found")
        return found[1]

    async def _cancel(self, caller: Caller, task_id: str) -> dict[str, Any]:
        found = await self._writer.call(store.get_a2a_task, task_id, caller.account_id)
        if found is None:
            raise wire.RpcError(wire.TASK_NOT_FOUND, f"Task {task_id!r} not found")
        agent_id, task = found
        if task["status"]["state"] in wire.FINAL:
            raise wire.RpcError(wire.TASK_NOT_CANCELABLE,
                                f"Task {task_id!r} is already {task['status']['state']}")
        task["status"] = wire.status("canceled")
        agent = self.agents.get(agent_id) or self.agent(None)
        await self._save(caller, agent, task)
        scope = self._running.get(task_id)
        if scope is not None:
            scope.cancel()
        return task
