"""A2A: the agents of `[[agents]]` behind Prism's JSON-RPC endpoint (`POST /a2a[/<agent>]`).

Local agents run here (gateway.a2a.local) as tasks kept in the store: `message/send`
waits for the answer unless `configuration.blocking` is false, in which case the task
runs in this service's nursery and `tasks/get` / `tasks/cancel` find it there; a
`message/stream` streams the task's events as they happen. Remote agents are fronted
(gateway.a2a.remote): their card is fetched and cached, calls proxied with the agent's
own credentials and timeout, and charged `price_usd` per call.

Conversations: a message naming an existing `contextId` starts a task that sees the
context's earlier turns (the account's own tasks there, oldest first); one naming a
`taskId` continues that task when it is not in a final state (the protocol refuses
messages to a finished task: -32004, continue through its contextId instead).
Push notifications (gateway.a2a.push): each update of a local task is posted to the
task's webhooks. Both protocol versions are served: 0.3 method names, and 1.0's
(gateway.a2a.v1), translated to these at the edge.

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
from gateway.a2a.local import Chat, run_local, skills_of, turns_of
from gateway.a2a.push import PushConfigs
from gateway.a2a.remote import RemoteAgents
from gateway.config_protocols import A2AConfig, AgentConfig
from gateway.mcp.hub import Caller, McpHub

log = logging.getLogger("prism.a2a")


class A2AService:
    def __init__(self, agents: tuple[AgentConfig, ...], *, writer: Any, chat: Chat,
                 hub: McpHub | None, remote: RemoteAgents, push: PushConfigs,
                 limits: A2AConfig) -> None:
        self.agents = {a.id: a for a in agents}
        self._writer = writer
        self._push = push
        self._limits = limits
        self._chat = chat
        self._hub = hub
        self.remote = remote
        self._running: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._push.run)
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
                version="1", skills=skills, push=self._local(None))
        a = self.agent(agent_id)
        return wire.card(name=a.name or a.id, description=a.description or f"Agent {a.id}",
                         url=f"{base_url}/a2a/{a.id}", version="1", skills=skills_of(a),
                         push=a.kind == "local")

    def _local(self, agent_id: str | None) -> bool:
        return self.agent(agent_id).kind == "local" if self.agents else False

    def listing(self) -> list[dict[str, Any]]:
        return [{"id": a.id, "object": "agent", "kind": a.kind, "name": a.name or a.id,
                 "description": a.description, "model": a.model or None,
                 "url": f"/a2a/{a.id}"} for a in self.agents.values()]

    # ------------------------------------------------------------ JSON-RPC

    async def call(self, caller: Caller, agent_id: str | None, method: str,
                   params: dict[str, Any], protocol: str = wire.PROTOCOL_VERSION) -> Any:
        agent = self.agent(agent_id)
        if method.startswith("tasks/pushNotificationConfig/"):
            if agent.kind == "remote":
                raise wire.RpcError(wire.PUSH_NOT_SUPPORTED, f"Agent {agent.id!r} is a "
                                    "remote agent: Prism keeps no push notifications for it")
            return await self._push.rpc(caller, method, params, protocol)
        if agent.kind == "remote" and method in ("message/send", "tasks/get", "tasks/cancel"):
            return await self.remote.call(agent, caller, method, params)
        if method == "message/send":
            return await self._send(agent, caller, wire.send_params(params), protocol)
        if method == "tasks/get":
            task = await self._task(caller, wire.task_id_param(params))
            history = params.get("historyLength")
            return wire.trimmed(task, history if isinstance(history, int) else None)
        if method == "tasks/cancel":
            return await self._cancel(caller, wire.task_id_param(params))
        raise wire.RpcError(wire.METHOD_NOT_FOUND, f"Method {method!r} is not supported")

    async def list_tasks(self, caller: Caller, agent_id: str | None,
                         page: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """One page of the caller's tasks with this agent (remote ones as Prism last saw
        them), newest first, and how many there are."""
        agent = self.agent(agent_id)
        return await self._writer.call(store.list_a2a_tasks, caller.account_id, agent.id,
                                       context_id=page["context_id"], state=page["state"],
                                       limit=page["limit"], offset=page["offset"])

    async def stream(self, caller: Caller, agent_id: str | None, params: dict[str, Any],
                     protocol: str = wire.PROTOCOL_VERSION) -> AsyncIterator[dict[str, Any]]:
        agent = self.agent(agent_id)
        if agent.kind == "remote":
            async for event in self.remote.stream(agent, caller, params):
                yield event
            return
        sent = wire.send_params(params)
        task = await self._create(agent, caller, sent, protocol)
        yield task
        async for event in self._guarded_events(agent, caller, task):
            yield event

    # ------------------------------------------------------------ local tasks

    async def _save(self, caller: Caller, agent: AgentConfig, task: dict[str, Any],
                    cost: int = 0) -> bool:
        with trio.CancelScope(shield=True):
            return await self._writer.call(store.save_a2a_task, task, account_id=caller.account_id,
                                           agent_id=agent.id, cost_micros=cost)

    async def _create(self, agent: AgentConfig, caller: Caller, sent,
                      protocol: str) -> dict[str, Any]:
        message = wire.dump_message(sent.message)
        push = sent.configuration.push_notification_config if sent.configuration else None
        push = push.model_dump(mode="json", by_alias=True, exclude_none=True) if push else None
        if push is not None:
            await self._push.check(push)   # refused before a task exists that would never run
        if sent.message.task_id:
            task = await self._continued(agent, caller, sent.message)
            task["history"].append({**message, "contextId": task["contextId"]})
            task["status"] = wire.status("submitted")
            await self._save(caller, agent, task)
        else:
            context_id = sent.message.context_id or uuid.uuid4().hex
            task_id = uuid.uuid4().hex
            first = {**message, "taskId": task_id, "contextId": context_id}
            task = wire.new_task(task_id, context_id, first)
            await self._save(caller, agent, task)
        if push is not None:
            await self._push.set(caller, task["id"], push, protocol)
        return task

    async def _continued(self, agent: AgentConfig, caller: Caller, message) -> dict[str, Any]:
        """The task a message with a taskId continues, if it may be continued."""
        found = await self._writer.call(store.get_a2a_task, message.task_id, caller.account_id)
        if found is None or found[0] != agent.id:
            raise wire.RpcError(wire.TASK_NOT_FOUND, f"Task {message.task_id!r} not found")
        task = found[1]
        state = task["status"]["state"]
        if state in wire.FINAL:
            raise wire.RpcError(wire.UNSUPPORTED, f"Task {task['id']!r} is {state} and takes no "
                                f"more messages; continue the conversation with a new "
                                f"message in its context (contextId {task['contextId']!r})")
        if task["id"] in self._running:
            raise wire.RpcError(wire.UNSUPPORTED, f"Task {task['id']!r} is still working; "
                                "wait for it to finish or cancel it")
        if message.context_id and message.context_id != task["contextId"]:
            raise wire.RpcError(wire.INVALID_PARAMS, f"Task {task['id']!r} belongs to context "
                                f"{task['contextId']!r}, not {message.context_id!r}")
        return task

    async def _conversation(self, caller: Caller, task: dict[str, Any]) -> list[tuple[str, str]]:
        """The turns the agent sees: the context's earlier tasks, then this task's."""
        earlier = await self._writer.call(
            store.a2a_context_history, task["contextId"], caller.account_id,
            limit=self._limits.context_max_tasks + 1)
        turns: list[tuple[str, str]] = []
        for other in earlier:
            if other["id"] != task["id"]:
                turns += turns_of(other["history"])
        return turns + turns_of(task["history"])

    async def _update(self, caller: Caller, agent: AgentConfig, task: dict[str, Any],
                      event: dict[str, Any], cost: int = 0) -> bool:
        """Save the task's new state and tell its webhooks; False when a cancel won."""
        saved = await self._save(caller, agent, task, cost)
        if saved:
            await self._push.notify(caller.account_id, task, event)
        return saved

    async def _events(self, agent: AgentConfig, caller: Caller,
                      task: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run the task to a final state, saving each state and yielding each event. The
        run itself sits in a cancel scope that tasks/cancel can reach; no yield happens
        inside it, so a streaming client that leaves simply stops the generator."""
        scope = trio.CancelScope()
        self._running[task["id"]] = scope
        try:
            task["status"] = wire.status("working")
            event = wire.status_event(task, final=False)
            await self._update(caller, agent, task, event)
            yield event
            answer, cost, failure = None, 0, None
            with scope:
                try:
                    turns = await self._conversation(caller, task)
                    answer, cost = await run_local(agent, turns, caller, chat=self._chat,
                                                   hub=self._hub)
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
            event = wire.status_event(task, final=True)
            await self._update(caller, agent, task, event)
            yield event
            return
        artifact = wire.text_artifact(answer)
        task["artifacts"].append(artifact)
        reply = wire.agent_message(answer, task_id=task["id"], context_id=task["contextId"])
        task["history"].append(reply)
        task["status"] = wire.status("completed", reply)
        final = wire.status_event(task, final=True)
        if not await self._update(caller, agent, task, final, cost):
            task["status"] = wire.status("canceled")   # a cancel won the race
            final = wire.status_event(task, final=True)
        yield wire.artifact_event(task, artifact)
        yield final

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
                with trio.CancelScope(shield=True):
                    await self._update(caller, agent, task, wire.status_event(task, final=True))

    async def _send(self, agent: AgentConfig, caller: Caller, sent,
                    protocol: str) -> dict[str, Any]:
        task = await self._create(agent, caller, sent, protocol)
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
        await self._update(caller, agent, task, wire.status_event(task, final=True))
        scope = self._running.get(task_id)
        if scope is not None:
            scope.cancel()
        return task
