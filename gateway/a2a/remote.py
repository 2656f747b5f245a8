"""Remote A2A agents that Prism fronts: their cards fetched and cached, their JSON-RPC
calls proxied with the agent's own credentials (`headers`, `${ENV}` expanded) and
timeout, each call charged the agent's `price_usd` (held before, settled once the
remote answered, voided when it did not).

The remote's task ids are recorded against the caller's account, so `tasks/get` and
`tasks/cancel` reach the remote only for tasks this account created through Prism.
"""
from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any, AsyncIterator

import httpx
import trio

import store
from gateway import errors
from gateway.a2a import wire
from gateway.billing.pricing import usd_to_micros
from gateway.config_protocols import AgentConfig
from gateway.mcp.hub import Caller
from gateway.mcp.upstream import expand_env

CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")


class RemoteAgents:
    def __init__(self, *, writer: Any, money: Any) -> None:
        self._writer = writer
        self._money = money            # gateway.callmoney.CallMoney
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

    async def _hold(self, agent: AgentConfig, caller: Caller) -> tuple[str | None, str, int]:
        price = usd_to_micros(agent.price_usd)
        request_id = "a2a_" + secrets.token_hex(12)
        if not price:
            return None, request_id, 0
        return await self._money.hold(caller.account_id, request_id, price), request_id, price

    async def _close(self, hold: tuple[str | None, str, int], caller: Caller, agent: AgentConfig,
                     answered: bool) -> None:
        hold_id, request_id, price = hold
        if hold_id is None:
            return
        with trio.CancelScope(shield=True):
            await self._money.close(caller.account_id, hold_id, price if answered else None, log={
                "request_id": request_id, "key_id": caller.key_id,
                "account_id": caller.account_id, "route": f"/a2a/{agent.id}", "dialect": "a2a",
                "model": agent.id, "status": 200 if answered else 502,
                "cost_micros": price if answered else 0})

    async def call(self, agent: AgentConfig, caller: Caller, method: str,
                   params: dict[str, Any]) -> Any:
        if method in ("tasks/get", "tasks/cancel"):
            await self._owned(caller, agent, params)
        else:
            wire.send_params(params)
        hold = await self._hold(agent, caller) if method == "message/send" else (None, "", 0)
        answered = False
        try:
            body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
            try:
                r = await self._http.post(await self._endpoint(agent), json=body,
                                          headers=self._headers(agent), timeout=agent.timeout)
                reply = r.json()
            except (httpx.HTTPError, json.JSONDecodeError):
                raise errors.UpstreamError(f"Agent {agent.id!r} did not answer") from None
            if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
                raise errors.UpstreamError(f"Agent {agent.id!r} answered malformed JSON-RPC")
            answered = True
            if "error" in reply:
                e = reply["error"] if isinstance(reply["error"], dict) else {}
                raise wire.RpcError(int(e.get("code", wire.INTERNAL)),
                                    str(e.get("message", "remote agent error"))[:500])
            await self._record(caller, agent, reply["result"])
            return reply["result"]
        finally:
            await self._close(hold, caller, agent, answered)

    async def stream(self, agent: AgentConfig, caller: Caller,
                     params: dict[str, Any]) -> AsyncIterator[Any]:
        wire.send_params(params)
        hold = await self._hold(agent, caller)
        answered = False
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
        finally:
            await self._close(hold, caller, agent, answered)
