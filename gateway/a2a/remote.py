"""Remote A2A agents that Prism fronts: their cards fetched and cached, their JSON-RPC
calls proxied with the agent's own credentials (`headers`, `${ENV}` expanded) and
timeout. Each `message/send` and `message/stream` is one engine operation (the key's
rate limits, plan windows and wallet admit it; the engine's close charges the agent's
`price_usd` once the remote answered, voids it when it did not, and logs it).

The remote's task ids are recorded against the caller's account, so `tasks/get` and
`tasks/cancel` reach the remote only for tasks this account created through Prism.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator

import httpx

import store
from gateway import errors
from gateway.a2a import wire
from gateway.config_protocols import AgentConfig
from gateway.engine.call import Target
from gateway.mcp.hub import Caller, call_context, priced_call
from gateway.mcp.upstream import expand_env

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")


class RemoteAgents:
    def __init__(self, agents: tuple[AgentConfig, ...], *, writer: Any, pipeline: Any) -> None:
        self._writer = writer
        self._pipeline = pipeline      # gateway.engine.pipeline.Pipeline
        self._ops = {a.id: priced_call("a2a", a.price_usd, "agent call") for a in agents}
        self._http = httpx.AsyncClient()     # closed by aclose, when the A2A service stops
        self._cards: dict[str, tuple[float, dict[str, Any]]] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, agent: AgentConfig) -> dict[str, str]:
        return {k: expand_env(v) for k, v in agent.headers.items()}

    async def card(self, agent: AgentConfig) -> dict[str, Any]:
        cached = self._cards.get(agent.id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        base = agent.url.rstrip("/")
        for path in CARD_PATHS:
            try:
                r = await self._http.get(base + path, headers=self._headers(agent),
                                         timeout=agent.timeout)
            except httpx.HTTPError:
                raise errors.UpstreamError(f"Agent {agent.id!r} is unreachable") from None
            if r.status_code == 200:
                card = r.json()
                self._cards[agent.id] = (time.monotonic() + agent.card_ttl, card)
                return card
        raise errors.UpstreamError(f"Agent {agent.id!r} publishes no agent card")

    async def _endpoint(self, agent: AgentConfig) -> str:
        return (await self.card(agent)).get("url") or agent.url

    async def _record(self, caller: Caller, agent: AgentConfig, value: Any) -> None:
        if isinstance(value, dict) and value.get("kind") == "task" and "status" in value:
            await self._writer.call(store.save_a2a_task, value, account_id=caller.account_id,
                                    agent_id=agent.id)

    async def _owned(self, caller: Caller, agent: AgentConfig, params: dict[str, Any]) -> None:
        found = await self._writer.call(store.get_a2a_task, wire.task_id_param(params),
                                        caller.account_id)
        if found is None or found[0] != agent.id:
            raise wire.RpcError(wire.TASK_NOT_FOUND, f"Task {params['id']!r} not found")

    async def _continues(self, caller: Caller, agent: AgentConfig, sent: Any) -> None:
        """A message continuing a remote task reaches the remote only for a task this
        account created through Prism."""
        if sent.message.task_id:
            await self._owned(caller, agent, {"id": sent.message.task_id})

    async def _hold(self, agent: AgentConfig, caller: Caller) -> Any:
        ctx = call_context(caller, f"/a2a/{agent.id}", "a2a", "a2a_")
        return await self._pipeline.hold(ctx, self._ops[agent.id], agent.id,
                                         target=Target(agent.id, agent.id))

    async def _close(self, prep: Any, agent: AgentConfig, error: BaseException | None,
                     answered: bool) -> None:
        """An agent that answered (even with a JSON-RPC error of its own) did the work."""
        if answered:
            await self._pipeline.close(prep, None, None, units=self._ops[agent.id].units_of(None))
        else:
            await self._pipeline.close(prep, None, error or errors.UpstreamError(
                f"Agent {agent.id!r} did not answer"))

    async def call(self, agent: AgentConfig, caller: Caller, method: str,
                   params: dict[str, Any]) -> Any:
        if method in ("tasks/get", "tasks/cancel"):
            await self._owned(caller, agent, params)
            return await self._rpc(agent, caller, method, params)
        await self._continues(caller, agent, wire.send_params(params))
        prep = await self._hold(agent, caller)
        answered, error = False, None
        try:
            return await self._rpc(agent, caller, method, params)
        except wire.RpcError as exc:
            answered, error = True, exc    # the remote answered, with an error of its own
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            answered = answered or error is None
            await self._close(prep, agent, error, answered)

    async def _rpc(self, agent: AgentConfig, caller: Caller, method: str,
                   params: dict[str, Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
        try:
            r = await self._http.post(await self._endpoint(agent), json=body,
                                      headers=self._headers(agent), timeout=agent.timeout)
            reply = r.json()
        except (httpx.HTTPError, json.JSONDecodeError):
            raise errors.UpstreamError(f"Agent {agent.id!r} did not answer") from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise errors.UpstreamError(f"Agent {agent.id!r} answered malformed JSON-RPC")
        if "error" in reply:
            e = reply["error"] if isinstance(reply["error"], dict) else {}
            raise wire.RpcError(int(e.get("code", wire.INTERNAL)),
                                str(e.get("message", "remote agent error"))[:500])
        await self._record(caller, agent, reply["result"])
        return reply["result"]

    async def stream(self, agent: AgentConfig, caller: Caller,
                     params: dict[str, Any]) -> AsyncIterator[Any]:
        await self._continues(caller, agent, wire.send_params(params))
        prep = await self._hold(agent, caller)
        answered, error = False, None
        try:
            body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": "message/stream",
                    "params": params}
            headers = {**self._headers(agent), "accept": "text/event-stream"}
            try:
                async with self._http.stream("POST", await self._endpoint(agent), json=body,
                                             headers=headers, timeout=agent.timeout) as r:
                    async for line in r.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        reply = json.loads(line[5:])
                        answered = True
                        if "error" in reply:
                            e = reply["error"] or {}
                            raise wire.RpcError(int(e.get("code", wire.INTERNAL)),
                                                str(e.get("message", "remote agent error"))[:500])
                        event = reply.get("result")
                        await self._record(caller, agent, event)
                        yield event
            except (httpx.HTTPError, json.JSONDecodeError):
                raise errors.UpstreamError(f"Agent {agent.id!r} broke off its stream") from None
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._close(prep, agent, error, answered)
