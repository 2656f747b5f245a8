"""A remote A2A agent written with the official `a2a-sdk` server (asyncio, uvicorn),
speaking A2A 0.3 JSON-RPC, for the gateway's proxy tests:

    python tests/a2a/remote_agent.py PORT TOKEN

It answers `remote echo: <text>`, refuses calls without `Authorization: Bearer TOKEN`,
and a message containing "slow" keeps its task working for 30 s (to be cancelled).
"""
from __future__ import annotations

import asyncio
import sys

import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        text = context.get_user_input()
        if "slow" in text:
            await asyncio.sleep(30)
        await updater.add_artifact([new_text_part(f"remote echo: {text}")], name="answer")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def app(port: int, token: str) -> Starlette:
    url = f"http://127.0.0.1:{port}/"
    card = AgentCard(
        name="echo", description="Echoes what it is sent", version="1",
        supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", url=url,
                                             protocol_version="0.3")],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"], default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echo", tags=["echo"])])
    handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(),
                                    agent_card=card)
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(
        handler, "/", enable_v0_3_compat=True)

    async def guard(request, call_next):
        if request.method == "POST" and request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return await call_next(request)

    application = Starlette(routes=routes)
    application.add_middleware(BaseHTTPMiddleware, dispatch=guard)
    return application


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(app(port, sys.argv[2]), host="127.0.0.1", port=port, log_level="warning")
