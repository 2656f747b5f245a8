"""A2A over HTTP: agent cards, `GET /v1/agents` and the JSON-RPC endpoint `POST /a2a`
(`/a2a/<agent>` for one agent; plain `/a2a` addresses the first configured one), which
takes A2A 0.3 method names (`message/send`...) and 1.0's (`SendMessage`...) alike.

Cards are public (discovery precedes credentials); everything else takes a Prism key as
`Authorization: Bearer`. JSON-RPC failures answer HTTP 200 with a JSON-RPC error object,
as the protocol expects; a missing or bad key is an HTTP 401 before any JSON-RPC.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

from quart import Blueprint, Response, request

from gateway import errors
from gateway.a2a import wire
from gateway.codecs.sse import encode_event
from gateway.http import common

def _v1():
    """A2A 1.0's shapes (gateway.a2a.v1): loaded on the first A2A call, since the SDK's
    models it converts with cost tens of MB that most gateways never use."""
    from gateway.a2a import v1
    return v1


bp = Blueprint("a2a", __name__)
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no"}


def _a2a():
    return common.services().a2a


def _base_url() -> str:
    return request.host_url.rstrip("/")


def _json(value: Any, status: int = 200) -> Response:
    return Response(common.dumps(value), status=status, content_type="application/json")


@bp.get("/.well-known/agent-card.json")
@bp.get("/.well-known/agent.json")
async def prism_card() -> Response:
    return _json(_a2a().card(_base_url()))


@bp.get("/a2a/<agent_id>/.well-known/agent-card.json")
@bp.get("/a2a/<agent_id>/.well-known/agent.json")
async def agent_card(agent_id: str) -> Response:
    return _json(_a2a().card(_base_url(), agent_id))


@bp.get("/v1/agents")
async def list_agents() -> Response:
    await _caller()
    return _json({"object": "list", "data": _a2a().listing()})


async def _caller():
    return await common.services().mcp.authenticate(common.bearer_token())


@bp.post("/a2a")
@bp.post("/a2a/<agent_id>")
async def rpc(agent_id: str | None = None) -> Response:
    caller = await _caller()
    service = _a2a()
    service.agent(agent_id)            # an unknown agent is a 404, not a JSON-RPC error
    data = await request.get_data(cache=False)
    rpc_id = None
    try:
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise wire.RpcError(wire.PARSE_ERROR, "Request body is not valid JSON") from None
        rpc_id, method, params = wire.parse_envelope(body)
        # 1.0 method names are the same calls as 0.3's, answered in 1.0's shapes.
        shape = None
        protocol = wire.PROTOCOL_VERSION
        v1 = _v1()
        if method == "ListTasks":           # 1.0 only: no 0.3 call to translate to
            page = v1.list_request(params)
            tasks, total = await service.list_tasks(caller, agent_id, page)
            return _json(wire.result(rpc_id, v1.list_result(tasks, page, total)))
        if v1.is_v1(method):
            shape, protocol = method, v1.PROTOCOL_VERSION
            method, params = v1.to_v03(method, params)
        if method == "message/stream":
            events = service.stream(caller, agent_id, params, protocol)
            first = await anext(events)     # refusals before the stream opens stay plain JSON
            return Response(_sse(rpc_id, first, events, shape is not None), headers=_SSE_HEADERS)
        value = await service.call(caller, agent_id, method, params, protocol)
        return _json(wire.result(rpc_id, value if shape is None else v1.result(shape, value)))
    except wire.RpcError as exc:
        return _json(wire.error(rpc_id, exc))
    except errors.ClientError as err:
        if err.status in (401, 403, 402, 429):
            raise                       # the HTTP-level refusal in the gateway's own shape
        return _json(wire.error(rpc_id, wire.rpc_error_of(err)))
    except errors.PrismError as err:
        return _json(wire.error(rpc_id, wire.rpc_error_of(err)))


async def _sse(rpc_id: Any, first: Any, events: AsyncIterator[Any],
               as_v1: bool) -> AsyncIterator[bytes]:
    shape = _v1().stream_event if as_v1 else (lambda event: event)
    yield encode_event(common.dumps(wire.result(rpc_id, shape(first))))
    try:
        async for event in events:
            yield encode_event(common.dumps(wire.result(rpc_id, shape(event))))
    except wire.RpcError as exc:
        yield encode_event(common.dumps(wire.error(rpc_id, exc)))
    except errors.PrismError as err:
        yield encode_event(common.dumps(wire.error(rpc_id, wire.rpc_error_of(err))))
    finally:
        await events.aclose()
