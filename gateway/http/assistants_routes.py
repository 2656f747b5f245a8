"""The Assistants API (/v1/assistants, /v1/threads...): decode, hand to
gateway/resources (assistants.py, runs.py), encode; streams relay a run's events as
the Assistants SSE stream the SDK's stream helpers consume."""
from __future__ import annotations

from quart import Blueprint, Response, request

from gateway.http import common
from gateway.http.files_routes import json_response, page, page_args
from gateway.resources import assistants as sa
from gateway.resources.assistants import public
from gateway.resources.runs import TERMINAL_EVENTS

bp = Blueprint("assistants", __name__)
_SSE = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"}


def _r():
    return common.services().resources


async def _account(route: str = "/v1/assistants") -> str:
    return (await common.authenticate(route, "openai", log=False)).account_id


def _frame(event: str, data) -> bytes:
    body = data if isinstance(data, str) else common.dumps(data)
    return f"event: {event}\ndata: {body}\n\n".encode()


def _stream(run_id: str, channel, first: list[tuple[str, dict]] = ()) -> Response:
    events = _r().runs.events

    async def body():
        try:
            for name, data in first:
                yield _frame(name, data)
            async for name, data in channel:
                yield _frame(name, data)
                if name in TERMINAL_EVENTS:
                    break
            yield _frame("done", "[DONE]")
        finally:
            events.unsubscribe(run_id, channel)
    return Response(body(), headers=_SSE)


async def _listing(model, account: str, parent: str | None, default: int = 20):
    limit, after, order = page_args(100, default)
    objs, more = await _r().assistants.listing(model, account, parent, limit=limit,
                                               after=after, order=order)
    return json_response(page([public(o) for o in objs], more))


# ---------------------------------------------------------------- assistants

@bp.post("/v1/assistants")
async def create_assistant():
    account = await _account()
    return json_response(await _r().assistants.create_assistant(account, await common.read_json_object()))


@bp.get("/v1/assistants")
async def list_assistants():
    return await _listing(sa.Assistant, await _account(), None)


@bp.get("/v1/assistants/<asst_id>")
async def get_assistant(asst_id: str):
    account = await _account()
    return json_response(await _r().assistants.get(sa.Assistant, account, asst_id))


@bp.post("/v1/assistants/<asst_id>")
async def update_assistant(asst_id: str):
    account = await _account()
    body = await common.read_json_object()
    return json_response(await _r().assistants.update_assistant(account, asst_id, body))


@bp.delete("/v1/assistants/<asst_id>")
async def delete_assistant(asst_id: str):
    account = await _account()
    await _r().assistants.delete(sa.Assistant, account, asst_id)
    return json_response({"id": asst_id, "object": "assistant.deleted", "deleted": True})


# ---------------------------------------------------------------- threads

@bp.post("/v1/threads")
async def create_thread():
    account = await _account("/v1/threads")
    data = await request.get_data(cache=True)
    body = await common.read_json_object() if data else {}
    return json_response(await _r().assistants.create_thread(account, body))


@bp.get("/v1/threads/<thread_id>")
async def get_thread(thread_id: str):
    account = await _account("/v1/threads")
    return json_response(await _r().assistants.get(sa.Thread, account, thread_id))


@bp.post("/v1/threads/<thread_id>")
async def update_thread(thread_id: str):
    account = await _account("/v1/threads")
    body = await common.read_json_object()
    return json_response(await _r().assistants.update_thread(account, thread_id, body))


@bp.delete("/v1/threads/<thread_id>")
async def delete_thread(thread_id: str):
    account = await _account("/v1/threads")
    await _r().assistants.delete(sa.Thread, account, thread_id)
    return json_response({"id": thread_id, "object": "thread.deleted", "deleted": True})


# ---------------------------------------------------------------- messages

@bp.post("/v1/threads/<thread_id>/messages")
async def create_message(thread_id: str):
    account = await _account("/v1/threads")
    msg = await _r().assistants.add_message(account, thread_id, await common.read_json_object())
    return json_response(public(msg))


@bp.get("/v1/threads/<thread_id>/messages")
async def list_messages(thread_id: str):
    account = await _account("/v1/threads")
    await _r().assistants.get(sa.Thread, account, thread_id)
    run_id = request.args.get("run_id")
    if run_id:
        objs = [public(m) for m in await _r().assistants.run_messages(account, thread_id, run_id)]
        if request.args.get("order", "desc") == "desc":
            objs.reverse()
        return json_response(page(objs, False))
    return await _listing(sa.ThreadMessage, account, thread_id)


@bp.get("/v1/threads/<thread_id>/messages/<msg_id>")
async def get_message(thread_id: str, msg_id: str):
    account = await _account("/v1/threads")
    return json_response(public(await _r().assistants.get(sa.ThreadMessage, account, msg_id, thread_id)))


@bp.post("/v1/threads/<thread_id>/messages/<msg_id>")
async def update_message(thread_id: str, msg_id: str):
    account = await _account("/v1/threads")
    body = await common.read_json_object()
    return json_response(public(await _r().assistants.update_message(account, thread_id, msg_id, body)))


@bp.delete("/v1/threads/<thread_id>/messages/<msg_id>")
async def delete_message(thread_id: str, msg_id: str):
    account = await _account("/v1/threads")
    await _r().assistants.get(sa.ThreadMessage, account, msg_id, thread_id)
    await _r().assistants.delete(sa.ThreadMessage, account, msg_id)
    return json_response({"id": msg_id, "object": "thread.message.deleted", "deleted": True})


# ---------------------------------------------------------------- runs

@bp.post("/v1/threads/<thread_id>/runs")
async def create_run(thread_id: str):
    account = await _account("/v1/threads/runs")
    run, channel = await _r().runs.create(account, thread_id, await common.read_json_object())
    if channel is not None:
        return _stream(run["id"], channel)
    return json_response(public(run))


@bp.post("/v1/threads/runs")
async def create_thread_and_run():
    account = await _account("/v1/threads/runs")
    thread, run, channel = await _r().runs.create_thread_and_run(account, await common.read_json_object())
    if channel is not None:
        return _stream(run["id"], channel, [("thread.created", thread)])
    return json_response(public(run))


@bp.get("/v1/threads/<thread_id>/runs")
async def list_runs(thread_id: str):
    account = await _account("/v1/threads/runs")
    await _r().assistants.get(sa.Thread, account, thread_id)
    return await _listing(sa.Run, account, thread_id)


@bp.get("/v1/threads/<thread_id>/runs/<run_id>")
async def get_run(thread_id: str, run_id: str):
    account = await _account("/v1/threads/runs")
    return json_response(public(await _r().runs.get(account, thread_id, run_id)))


@bp.post("/v1/threads/<thread_id>/runs/<run_id>")
async def update_run(thread_id: str, run_id: str):
    account = await _account("/v1/threads/runs")
    body = await common.read_json_object()
    return json_response(public(await _r().runs.update(account, thread_id, run_id, body)))


@bp.post("/v1/threads/<thread_id>/runs/<run_id>/cancel")
async def cancel_run(thread_id: str, run_id: str):
    account = await _account("/v1/threads/runs")
    return json_response(public(await _r().runs.cancel(account, thread_id, run_id)))


@bp.post("/v1/threads/<thread_id>/runs/<run_id>/submit_tool_outputs")
async def submit_tool_outputs(thread_id: str, run_id: str):
    account = await _account("/v1/threads/runs")
    body = await common.read_json_object()
    run, channel = await _r().runs.submit_tool_outputs(account, thread_id, run_id, body)
    if channel is not None:
        return _stream(run["id"], channel)
    return json_response(public(run))


@bp.get("/v1/threads/<thread_id>/runs/<run_id>/steps")
async def list_steps(thread_id: str, run_id: str):
    account = await _account("/v1/threads/runs")
    await _r().runs.get(account, thread_id, run_id)
    return await _listing(sa.RunStep, account, run_id)


@bp.get("/v1/threads/<thread_id>/runs/<run_id>/steps/<step_id>")
async def get_step(thread_id: str, run_id: str, step_id: str):
    account = await _account("/v1/threads/runs")
    await _r().runs.get(account, thread_id, run_id)
    step = await _r().assistants.get(sa.RunStep, account, step_id, run_id)
    return json_response(public(step))

