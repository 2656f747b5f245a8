"""The Responses API's hosted `file_search` tool with stream=true.

The same loop as hosted_search.complete, written to the client as it runs: each model
call is one admitted, billed, streamed chat request (chat.PipelineChat.open / relay),
whose text reaches the client token by token; a file_search call the model makes is
not shown as a function call but as a `file_search_call` output item (added,
in_progress, searching, completed, done) while Prism searches the caller's vector
stores, and then the model is asked again. The closing response.completed carries
every item, the `file_citation` annotations and the usage summed over all the calls.

    await check_stores(resources, account_id, fs)              # 404 before any byte
    st = await open_first(resources, account_id, req)          # refusals before any byte
    body = SearchStream(resources, account_id, req, fs, encoder, frames, save).body(st)
"""
from __future__ import annotations

import dataclasses
from contextlib import aclosing
from typing import AsyncIterator, Awaitable, Callable

import store.files as sf
from gateway import canonical as c
from gateway import errors
import gateway.resources.run_build as rb
from gateway.resources.hosted_search import MAX_ROUNDS, FileSearch, annotate_output, query_of


def _round(req: c.Request, messages: list[c.Message], round_no: int) -> c.Request:
    last = round_no == MAX_ROUNDS
    return dataclasses.replace(req, messages=tuple(messages), stream=True, include_usage=True,
                               tool_choice=c.ToolChoice("none") if last else req.tool_choice)


async def check_stores(resources, account_id: str, fs: FileSearch) -> None:
    """404 unless every store named is the caller's, before anything is sent."""
    for vs in fs.vector_store_ids:
        await resources.vector_stores.get(account_id, vs)


async def open_first(resources, account_id: str, req: c.Request):
    """The first model call, opened before the response starts, so that its refusal
    (402, 429...) is an ordinary error response rather than a broken stream."""
    return await resources.chat.open(account_id, _round(req, list(req.messages), 0))


class SearchStream:
    def __init__(self, resources, account_id: str, req: c.Request, fs: FileSearch, encoder,
                 frames: Callable[[list[dict]], bytes],
                 save: Callable[[dict], Awaitable[None]]) -> None:
        self.resources = resources
        self.account = account_id
        self.req = req
        self.fs = fs
        self.enc = encoder                  # codecs.openai_responses_stream.StreamEncoder
        self.frames = frames                # Responses event dicts -> SSE bytes
        self.save = save                    # stores the final Response object, if asked
        self.queries: list[str] = []
        self.sources: dict[str, str] = {}
        self.tokens_in = self.tokens_out = 0
        self.estimated = False

    def body(self, st) -> AsyncIterator[bytes]:
        """The response body. The first call's relay is made now, not when the body is
        first read: a relay dropped unread still ends its hold."""
        return self._body(_Round(self, st))

    async def _body(self, rnd: "_Round") -> AsyncIterator[bytes]:
        messages = list(self.req.messages)
        for round_no in range(MAX_ROUNDS + 1):
            if round_no:
                try:
                    rnd = _Round(self, await self.resources.chat.open(
                        self.account, _round(self.req, messages, round_no)))
                except errors.PrismError as err:
                    yield self.frames(self.enc.fail(err.type_name, err.message))
                    return
            async with aclosing(rnd.relay) as relay:
                async for chunk in relay:
                    if chunk:
                        yield chunk
            outcome = rnd.st.outcome
            if outcome is not None:
                self.tokens_in += outcome.tokens_in
                self.tokens_out += outcome.tokens_out
                self.estimated = self.estimated or outcome.estimated
            if rnd.failed:
                return
            message = c.collect_stream(rnd.events).message
            calls = [k for k in message.tool_calls if k.name == "file_search"]
            if not calls or len(calls) != len(message.tool_calls):
                break
            messages.append(message)
            for k in calls:
                for chunk in await self._search(k, messages):
                    yield chunk
        for chunk in await self._finish():
            yield chunk

    async def _search(self, call: c.ToolCallPart, messages: list[c.Message]) -> list[bytes]:
        q = query_of(call.arguments)
        call_no = len(self.queries)
        self.queries.append(q)
        item = {"id": f"fs_{self.enc.response_id.removeprefix('resp_')}_{call_no}",
                "type": "file_search_call", "status": "in_progress", "queries": [q],
                "results": None}
        out = [self.frames(self.enc.hosted_open(item, ("in_progress", "searching")))]
        try:
            results = await self.resources.vector_stores.search(
                self.account, self.fs.vector_store_ids, [q], max_results=self.fs.max_num_results,
                filters=self.fs.filters, score_threshold=self.fs.score_threshold)
        except errors.NotFound:
            results = []        # a store deleted since the response began
        for i, res in enumerate(results):
            self.sources[f"{call_no}:{i}"] = res["file_id"]
        out.append(self.frames(self.enc.hosted_done({**item, "status": "completed"})))
        messages.append(c.Message("tool", (c.ToolResultPart(
            call.id, (c.TextPart(rb.search_result_text(call_no, results)),)),)))
        return out

    async def _finish(self) -> list[bytes]:
        usage = c.Usage(input_tokens=self.tokens_in, output_tokens=self.tokens_out,
                        estimated=self.estimated)
        closing = self.enc.finish(usage)     # usage stands in: no round's was passed on
        names = await self.resources.writer.call(sf.filenames, list(set(self.sources.values())))
        annotate_output(closing[-1]["response"], self.sources, names)
        await self.save(closing[-1]["response"])
        return [self.frames(closing)]


class _Round:
    """One model call of the loop: its relay, and what it streamed."""

    def __init__(self, stream: SearchStream, st) -> None:
        self.stream = stream
        self.st = st
        self.events: list[c.StreamEvent] = []
        self.failed: list[errors.PrismError] = []
        self.hidden: set[int] = set()       # tool-call indexes of file_search calls
        self.relay = stream.resources.chat.relay(st, self.encode, self.error_frame)

    def encode(self, ev: c.StreamEvent) -> bytes:
        self.events.append(ev)
        if isinstance(ev, c.ToolCallStart) and ev.name == "file_search":
            self.hidden.add(ev.index)
        if isinstance(ev, c.UsageEvent) or (
                isinstance(ev, (c.ToolCallStart, c.ToolCallDelta)) and ev.index in self.hidden):
            return b""              # usage is summed over the calls; searches show as items
        return self.stream.frames(self.stream.enc.encode(ev))

    def error_frame(self, err: errors.PrismError) -> bytes:
        self.failed.append(err)
        return self.stream.frames(self.stream.enc.fail(err.type_name, err.message))
