"""OpenAI Responses API and legacy Completions API routes: decode, dispatch, encode.

    POST   /v1/responses         create (plain or streamed); stored unless store=false
    GET    /v1/responses/{id}    a stored response, for the account that created it only
    DELETE /v1/responses/{id}    delete it
    POST   /v1/completions       legacy text completions (plain or streamed)

``previous_response_id`` is resolved by the stored responses (resources/responses.py):
the stored conversation (its input items plus its output, replayed as input items)
becomes the canonical history the codec puts before the new input. Another account's id
answers exactly like a missing one (404). Storage limits are refused there too, before
any upstream call. A streamed response is stored before its final event is sent, so a
client that chains from it the moment it sees response.completed finds it.
"""
from __future__ import annotations

import time
from contextlib import aclosing

from quart import Blueprint, Response, request

from gateway import errors
from gateway.codecs import openai_completions, openai_responses
from gateway.codecs.openai_responses_stream import StreamEncoder
from gateway.http import common, framing, jobs_routes
from gateway.mcp import hosted as hosted_mcp
from gateway.resources import hosted_search, hosted_search_stream

bp = Blueprint("responses", __name__)


@bp.post("/v1/responses")
async def create_response():
    ctx = await common.authenticate("/v1/responses", "openai")
    body = await common.read_json_object()
    if jobs_routes.wants_async(body, request.headers.get("x-prism-async")):
        return await jobs_routes.queue_response(ctx, "/v1/responses", body)
    # Hosted `mcp` tools become function tools that the gateway itself runs; the hosted
    # file_search tool runs over Prism's own vector stores.
    body, file_search = hosted_search.take_file_search(body)
    hosted = hosted_mcp.split_hosted(body, common.services().mcp.hub,
                                     await common.services().mcp.authenticate(common.bearer_token()))
    services = common.services()
    stored = services.responses
    prior = await stored.prior_items(openai_responses.previous_response_id(body), ctx.account_id)
    req = openai_responses.to_canonical_request(
        body, history=openai_responses.history_messages(prior))
    ctx.model = req.model
    request_json = None
    if openai_responses.wants_store(body):
        request_json = stored.conversation_json(prior + openai_responses.input_items(body),
                                                chained=bool(prior))
    echo = openai_responses.request_echo(body)
    response_id = "resp_" + ctx.request_id.removeprefix("req_")
    created_at = int(time.time())
    pipeline = services.pipeline

    if not req.stream:
        if file_search is not None:
            payload, outcome = await hosted_search.respond(
                services.resources, ctx.account_id, req, file_search, response_id=response_id,
                created_at=created_at, request_echo=echo)
        else:
            if hosted is None:
                resp, outcome = await pipeline.complete(ctx, req)
            else:
                resp, outcome = await hosted_mcp.run(hosted, pipeline.complete, ctx, req)
            payload = openai_responses.from_canonical_response(
                resp, model=outcome.model, response_id=response_id, created_at=created_at,
                request_echo=echo)
            if hosted is not None:
                payload["output"] = hosted.items + payload["output"]
        text = common.dumps(payload)
        if request_json is not None:
            await stored.save(response_id, ctx.account_id, request_json, text)
        return Response(text, content_type="application/json",
                        headers=common.outcome_headers(outcome, outcome.model))

    if file_search is not None:
        return await _search_stream(services, ctx, req, file_search, response_id, created_at,
                                    echo, request_json)
    st = await pipeline.open_stream(ctx, req)
    encoder = StreamEncoder(response_id, st.prep.entry.model.id, created_at, echo)
    framer = framing.ResponsesFramer(encoder)

    # Made here, not in stream(): a relay that is dropped unread still ends its hold.
    body = pipeline.stream_body(st, framer.encode, framer.trailer, framer.error_frame)

    async def stream():
        # aclosing: if the client leaves while we sit at a yield, the relay is closed now,
        # so its settlement runs at once rather than whenever the generator is collected.
        async with aclosing(body) as relay:
            async for chunk in relay:
                if chunk:  # an empty chunk would end a chunked body early
                    yield chunk
        if framer.held:
            if request_json is not None and encoder.final is not None:
                await stored.save(response_id, ctx.account_id, request_json,
                                  common.dumps(encoder.final))
            yield framer.held[0]

    return Response(stream(), headers=framing.stream_headers(st, framer))


async def _search_stream(services, ctx, req, fs, response_id: str, created_at: int, echo: dict,
                         request_json: str | None) -> Response:
    """stream=true with the hosted file_search tool: every model call is its own
    billed request (resources/hosted_search_stream.py); a refusal of the first one is
    an ordinary error response."""
    await hosted_search_stream.check_stores(services.resources, ctx.account_id, fs)
    ctx.logged = True       # from here on, each model call writes its own log row
    st = await hosted_search_stream.open_first(services.resources, ctx.account_id, req)
    encoder = StreamEncoder(response_id, st.prep.entry.model.id, created_at,
                            hosted_search.echo_tools(echo, fs))
    framer = framing.ResponsesFramer(encoder)
    async def save(final: dict) -> None:
        if request_json is not None:
            await services.responses.save(response_id, ctx.account_id, request_json,
                                          common.dumps(final))

    body = hosted_search_stream.SearchStream(services.resources, ctx.account_id, req, fs,
                                             encoder, framer.frames, save).body(st)
    return Response(body, headers=framing.stream_headers(st, framer))


async def _account() -> str:
    ctx = await common.authenticate(request.path, "openai", log=False)
    return ctx.account_id


def _not_found(response_id: str) -> errors.NotFound:
    return errors.NotFound(f"Response with id '{response_id}' not found.")


@bp.get("/v1/responses/<response_id>")
async def retrieve_response(response_id: str):
    account_id = await _account()
    if request.args.get("stream", "").lower() == "true":
        raise errors.InvalidRequest("Replaying a stored response as a stream is not supported; "
                                    "retrieve it without stream=true", field="stream")
    saved = await common.services().responses.get(response_id, account_id)
    if saved is None:
        raise _not_found(response_id)
    return Response(common.dumps(saved), content_type="application/json")


@bp.delete("/v1/responses/<response_id>")
async def delete_response(response_id: str):
    account_id = await _account()
    if not await common.services().responses.delete(response_id, account_id):
        raise _not_found(response_id)
    return Response(common.dumps({"id": response_id, "object": "response", "deleted": True}),
                    content_type="application/json")


# ---------------------------------------------------------------- legacy completions

@bp.post("/v1/completions")
async def completions():
    ctx = await common.authenticate("/v1/completions", "openai")
    body = await common.read_json_object()
    req = openai_completions.to_canonical_request(body)
    ctx.model = req.model
    prefix = openai_completions.echo_prefix(body, req)
    completion_id = "cmpl-" + ctx.request_id.removeprefix("req_")
    created = int(time.time())
    pipeline = common.services().pipeline
    if not req.stream:
        resp, outcome = await pipeline.complete(ctx, req)
        payload = openai_completions.from_canonical_response(
            resp, id=completion_id, model=outcome.model, created=created, prefix=prefix)
        return Response(common.dumps(payload), content_type="application/json",
                        headers=common.outcome_headers(outcome, outcome.model))

    st = await pipeline.open_stream(ctx, req)
    encoder = openai_completions.StreamEncoder(completion_id, st.prep.entry.model.id, created,
                                               req.include_usage, prefix)
    return framing.relay(st, framing.Framer(encoder))
