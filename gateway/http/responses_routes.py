"""OpenAI Responses API and legacy Completions API routes. Decode, dispatch, encode, store.

    POST   /v1/responses         create (plain or streamed); stored unless store=false
    GET    /v1/responses/{id}    a stored response, for the account that created it only
    DELETE /v1/responses/{id}    delete it
    POST   /v1/completions       legacy text completions (plain or streamed)

``previous_response_id`` is resolved here: the stored conversation (its input items
plus its output, replayed as input items) becomes the canonical history the codec puts
before the new input. Another account's id answers exactly like a missing one (404).

Storage limits, refused with a 400 before any upstream call (and so before any money
moves): a stored conversation may hold at most MAX_CHAIN_ITEMS items and
MAX_STORED_BYTES bytes of JSON. A streamed response is stored before its final event
is sent, so a client that chains from it the moment it sees response.completed finds it.
A store failure after the answer was produced and billed is logged, not turned into an
error: the client has what it paid for, and only the chaining is lost.
"""
from __future__ import annotations

import logging
import time
from contextlib import aclosing

import trio
from quart import Blueprint, Response, request

import store
from gateway import errors
from gateway.codecs import openai_completions, openai_responses
from gateway.codecs.openai_responses_stream import StreamEncoder
from gateway.http import common, framing, jobs_routes
from gateway.mcp import hosted as hosted_mcp
from gateway.resources import hosted_search

bp = Blueprint("responses", __name__)
log = logging.getLogger("prism.http.responses")

MAX_STORED_BYTES = 1_000_000
MAX_CHAIN_ITEMS = 2_000
_SAVE_DEADLINE = 10.0


# ---------------------------------------------------------------- responses

async def _prior_items(body: dict, account_id: str) -> list:
    prev = openai_responses.previous_response_id(body)
    if prev is None:
        return []
    saved = await common.services().writer.call(store.get_response, prev, account_id)
    if saved is None:
        raise errors.NotFound(f"Previous response with id '{prev}' not found.",
                              code="previous_response_not_found")
    return saved.request_items + openai_responses.output_as_input(saved.response)


def _conversation_json(items: list, chained: bool) -> str:
    if chained and len(items) > MAX_CHAIN_ITEMS:
        raise errors.InvalidRequest(
            f"The conversation chained through previous_response_id holds {len(items)} items; "
            f"at most {MAX_CHAIN_ITEMS} can be stored. Start a new conversation, or send the "
            f"input in full with store=false.", field="previous_response_id",
            code="conversation_too_long")
    text = common.dumps(items)
    if len(text.encode()) > MAX_STORED_BYTES:
        raise errors.InvalidRequest(
            f"The conversation to store is {len(text.encode())} bytes; at most "
            f"{MAX_STORED_BYTES} can be stored. Send store=false, or start a new conversation.",
            field="store", code="conversation_too_large")
    return text


async def _save(writer, response_id: str, account_id: str, request_json: str,
                response_json: str) -> None:
    """``writer`` is passed in because a streamed body runs outside the app context."""
    if len(response_json.encode()) > MAX_STORED_BYTES:
        log.warning("response %s not stored: %d bytes is over the cap", response_id,
                    len(response_json.encode()))
        return
    # Shielded: a stream whose client left after the final event still gets stored.
    with trio.CancelScope(shield=True, deadline=trio.current_time() + _SAVE_DEADLINE):
        try:
            await writer.call(store.save_response, response_id, account_id, request_json,
                              response_json)
        except store.StoreError:
            log.exception("response %s was produced and billed but could not be stored",
                          response_id)


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
    prior = await _prior_items(body, ctx.account_id)
    req = openai_responses.to_canonical_request(
        body, history=openai_responses.history_messages(prior))
    ctx.model = req.model
    request_json = None
    if openai_responses.wants_store(body):
        request_json = _conversation_json(prior + openai_responses.input_items(body),
                                          chained=bool(prior))
    echo = openai_responses.request_echo(body)
    response_id = "resp_" + ctx.request_id.removeprefix("req_")
    created_at = int(time.time())
    services = common.services()
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
            await _save(services.writer, response_id, ctx.account_id, request_json, text)
        return Response(text, content_type="application/json",
                        headers=common.outcome_headers(outcome, outcome.model))

    st = await pipeline.open_stream(ctx, req)
    encoder = StreamEncoder(response_id, st.prep.entry.model.id, created_at, echo)
    framer = framing.ResponsesFramer(encoder)

    async def stream():
        # aclosing: if the client leaves while we sit at a yield, the relay is closed now,
        # so its settlement runs at once rather than whenever the generator is collected.
        body = pipeline.stream_body(st, framer.encode, framer.trailer, framer.error_frame)
        async with aclosing(body) as relay:
            async for chunk in relay:
                if chunk:  # an empty chunk would end a chunked body early
                    yield chunk
        if framer.held:
            if request_json is not None and encoder.final is not None:
                await _save(services.writer, response_id, ctx.account_id, request_json,
                            common.dumps(encoder.final))
            yield framer.held[0]

    return Response(stream(), headers=framing.stream_headers(st, framer))


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
    saved = await common.services().writer.call(store.get_response, response_id, account_id)
    if saved is None:
        raise _not_found(response_id)
    return Response(common.dumps(saved.response), content_type="application/json")


@bp.delete("/v1/responses/<response_id>")
async def delete_response(response_id: str):
    account_id = await _account()
    if not await common.services().writer.call(store.delete_response, response_id, account_id):
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
