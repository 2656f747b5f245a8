"""Session memory (X-Prism-Session): history in, turn out, and compaction.

attach() runs after model selection: it loads the caller's session (sliding its
expiry), condenses it first if it has reached ``session_compact_at`` messages, and
returns the request with the stored system prompt, the summary and the earlier turns
in front of the new messages. A request that brings system messages replaces the
stored system prompt; one that brings none reuses it, so clients need not resend it.
save() runs after a successful close and appends the new messages plus the reply.

Compaction asks the cheapest configured chat model to summarise the oldest messages
through the ordinary pipeline, so it is admitted, billed to the caller, logged (route
"session-compaction", request id "<request id>-compact") and failed over like any
request. If that cannot happen (no model, no money, upstream down) an extractive
summary is made locally instead; either way the cap of ``session_max_messages`` is
never reached. A summary request is sent without session, pin or mode, so it cannot
recurse.

The session's message count before this turn goes on the request as
``metadata["prism_session_messages"]``, for plan limits on session length.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

import store
from gateway import canonical as c
from gateway import errors, tokenizer
from gateway.routing import session_codec as codec
from gateway.routing.modes import blended_price

from gateway.engine.call import CallContext

if TYPE_CHECKING:
    from gateway.engine.call import Prepared
    from gateway.engine.live import Live

log = logging.getLogger("prism.sessions")

# The injected summary call: the pipeline's complete().
Complete = Callable[[CallContext, c.Request], Awaitable[tuple[c.Response, Any]]]

SESSION_MESSAGES_KEY = "prism_session_messages"
_SAVE_DEADLINE = 10.0
_SUMMARY_MAX_TOKENS = 600


@dataclass
class Turn:
    """What one request adds to its session; a streamed reply is gathered as it is
    delivered (pipeline.stream_body calls observe for each event the client got)."""
    session_id: str
    system: tuple[c.Message, ...] | None
    new: tuple[c.Message, ...]
    events: list[c.StreamEvent] = field(default_factory=list)

    def observe(self, ev: c.StreamEvent) -> None:
        self.events.append(ev)

    def streamed_reply(self) -> c.Message:
        return c.collect_stream(self.events).message


def _tokens(m: c.Message) -> int:
    # count_messages adds the reply priming once; a stored message costs what it adds.
    return tokenizer.count_messages((m,)) - tokenizer.count_messages(())


def _envelope(m: c.Message) -> dict[str, Any]:
    return {"t": _tokens(m), "m": codec.encode_message(m)}


def _fold(previous: str | None, envelopes: list[dict[str, Any]]) -> tuple[str, int]:
    """The store's overflow hook: condense what falls off the cap, in its transaction."""
    messages = [codec.decode_message(e["m"]) for e in envelopes]
    summary = codec.extractive_summary(previous, messages)
    return summary, tokenizer.count_text(summary)


def _summary_message(summary: str) -> c.Message:
    return c.Message("system", (c.TextPart(f"Summary of the earlier conversation:\n{summary}"),))


class Sessions:
    def __init__(self, live: "Live", writer: Any, clock: Callable[[], float]) -> None:
        self.live = live
        self.writer = writer
        self.clock = clock

    @property
    def _cfg(self):
        return self.live.config.routing

    async def _open(self, account_id: str, session_id: str) -> store.SessionData | None:
        return await self.writer.call(store.open_session, account_id, session_id,
                                        now=self.clock(), ttl=self._cfg.session_ttl)

    async def attach(self, ctx: "CallContext", req: c.Request,
                     complete: Complete | None = None) -> tuple[c.Request, Turn]:
        """``complete`` serves the summary request when the session must be compacted
        (the pipeline passes its own, so the summary is selected, held and billed like
        any request); without it the summary is extractive."""
        assert ctx.hints is not None and ctx.hints.session
        sid = ctx.hints.session
        data = await self._open(ctx.account_id, sid)
        if data is not None and data.message_count >= self._cfg.session_compact_at:
            data = await self._compact(ctx, data, complete) or data
        system_new = tuple(m for m in req.messages if m.role == "system")
        rest = tuple(m for m in req.messages if m.role != "system")
        stored_system: tuple[c.Message, ...] = ()
        history: tuple[c.Message, ...] = ()
        summary: tuple[c.Message, ...] = ()
        if data is not None:
            try:
                stored_system = codec.decode_messages(data.system)
                history = codec.decode_envelopes(data.messages)
            except (ValueError, KeyError, TypeError):
                # Rows are written by this code; a bad one is a bug, not the caller's
                # problem: carry on without the history rather than fail every turn.
                log.exception("session %s of %s is unreadable; ignoring its history",
                              sid, ctx.account_id)
            if data.summary:
                summary = (_summary_message(data.summary),)
        messages = (system_new or stored_system) + summary + history + rest
        metadata = {**req.metadata, SESSION_MESSAGES_KEY: data.message_count if data else 0}
        turn = Turn(sid, system_new or None, rest)
        return dataclasses.replace(req, messages=messages, metadata=metadata), turn

    async def save(self, prep: "Prepared", reply: c.Message | None) -> None:
        """Append the turn; ``reply`` None means the streamed reply gathered on the turn.
        A failure to save is logged, not raised: the client has its answer and its bill."""
        turn: Turn = prep.turn
        reply = reply if reply is not None else turn.streamed_reply()
        envelopes = [_envelope(m) for m in (*turn.new, reply)]
        system = None
        system_tokens = 0
        if turn.system is not None:
            system = [codec.encode_message(m) for m in turn.system]
            system_tokens = sum(_tokens(m) for m in turn.system)
        with trio.CancelScope(shield=True), trio.move_on_after(_SAVE_DEADLINE):
            try:
                await self.writer.call(
                    store.append_turn, prep.ctx.account_id, turn.session_id, messages=envelopes,
                    system=system, system_tokens=system_tokens, now=self.clock(),
                    ttl=self._cfg.session_ttl, max_messages=self._cfg.session_max_messages,
                    fold=_fold)
            except store.StoreError:
                log.exception("could not save a turn of session %s", turn.session_id)

    # ------------------------------------------------------------ compaction

    def _summariser(self, ctx: "CallContext"):
        pool = [e for e in self.live.catalog.models()
                if e.price is not None and "chat" in e.model.capabilities
                and (ctx.allowed_models is None or e.model.id in ctx.allowed_models)]
        return min(pool, key=blended_price) if pool else None

    async def _summarise(self, ctx: "CallContext", complete: Complete | None,
                         previous: str | None,
                         old: tuple[c.Message, ...]) -> str:
        entry = self._summariser(ctx) if complete is not None else None
        if entry is not None and complete is not None:
            sub = CallContext(request_id=f"{ctx.request_id}-compact", route="session-compaction",
                              dialect=ctx.dialect, account_id=ctx.account_id, key_id=ctx.key_id,
                              model=entry.model.id, allowed_models=ctx.allowed_models)
            req = c.Request(
                model=entry.model.id,
                messages=(c.Message("system", (c.TextPart(codec.SUMMARY_INSTRUCTIONS),)),
                          c.Message("user", (c.TextPart(codec.transcript(previous, old)),))),
                max_tokens=min(_SUMMARY_MAX_TOKENS, entry.model.max_output_tokens))
            try:
                resp, _ = await complete(sub, req)
            except errors.PrismError as exc:
                log.warning("session summary by %s failed (%s); summarising locally",
                            entry.model.id, exc.type_name)
            else:
                text = resp.message.text.strip()
                if text:
                    return text
        return codec.extractive_summary(previous, old)

    async def _compact(self, ctx: "CallContext", data: store.SessionData,
                       complete: Complete | None) -> store.SessionData | None:
        try:
            messages = codec.decode_envelopes(data.messages)
        except (ValueError, KeyError, TypeError):
            return None
        cut = codec.compaction_cut(messages, self._cfg.session_keep_messages)
        if cut == 0:
            return None
        summary = await self._summarise(ctx, complete, data.summary, messages[:cut])
        return await self.writer.call(
            store.compact_session, ctx.account_id, data.id, expect_version=data.version,
            drop=cut, summary=summary, summary_tokens=tokenizer.count_text(summary),
            now=self.clock(), ttl=self._cfg.session_ttl)

    # ------------------------------------------------------------ the sessions API

    async def info(self, account_id: str, session_id: str) -> dict[str, Any] | None:
        """GET /v1/sessions/{id}: counts and times; reading it is a use, so it slides
        the expiry like a turn does."""
        data = await self._open(account_id, session_id)
        if data is None:
            return None
        return {"id": data.id, "object": "session", "message_count": data.message_count,
                "tokens": data.tokens, "created_at": int(data.created_at),
                "expires_at": int(data.expires_at), "summarized": data.summary is not None,
                "summary": data.summary,
                "has_system": json.loads(data.system) != []}

    async def delete(self, account_id: str, session_id: str) -> bool:
        return await self.writer.call(store.delete_session, account_id, session_id,
                                        now=self.clock())

    async def purge(self) -> int:
        return await self.writer.call(store.purge_sessions, self.clock())

    async def purge_forever(self, interval: float) -> None:
        """Drop expired sessions every ``interval`` seconds (a read finds them expired
        anyway; this only reclaims the space). Runs in the server's nursery."""
        while True:
            await trio.sleep(interval)
            try:
                n = await self.purge()
            except store.StoreError:
                log.exception("purging expired sessions failed; will retry")
                continue
            if n:
                log.info("purged %d expired session(s)", n)
