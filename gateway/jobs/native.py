"""Batch lines sent to an upstream's own batch API instead of one call each.

A provider with ``native_batch = true`` (prism.toml; kinds openai, anthropic, gemini)
takes the lines of a batch whose model's first route is that provider: the batch
handler (gateway.jobs.batches) calls ``step`` at every run, and runs line by line only
the lines no pending native group holds. One step:

    plan      queued lines that can go native are admitted one by one through the
              engine (Pipeline.prepare: plan checks, rate limits, the worst case held),
              encoded with their provider's codec (gateway.jobs.native_wire) and recorded
              in a group per (provider, upstream model), with their holds. A line the
              engine refuses, or that selection sends elsewhere (an open breaker, an
              org's own credential, smart routing), stays for the line-by-line path.
    submit    one upstream batch per group; its id is written the moment the upstream
              answers, so a runner that takes the batch over polls it instead of sending
              it again. An upstream that refuses the batch drops the group: its holds are
              voided and its lines run line by line (with failover) in the same run.
    poll      each submitted group's upstream status; the lines' holds are kept alive
              (gateway.jobs.native_settle); once it ended, every line is settled at the
              batch price from the usage the provider reported, or voided with its error.

Between polls the batch goes back to the queue, due jobs.native_poll_interval later, so
an hours-long upstream batch holds no runner slot and survives any process: whichever
runner claims it next polls it. Cancel forwards the cancel upstream and finishes the
batch once the upstream batch has ended: lines it completed stay billed, the rest not.

A process that dies after the upstream accepted a batch and before its id was written
(one HTTP round trip) leaves a group in ``submitting``: the next runner first looks for
it upstream by its tag (OpenAI keeps it in the batch's metadata, Gemini in its display
name) and adopts it. Anthropic keeps nothing of ours on a batch, so there the next
runner sends it again: the customer is still billed once per line (each line settles
once), but the upstream may run those lines twice.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from typing import Any

import trio

import store.batch_lines as sb
import store.batch_native as sn
import store.jobs as sj
from gateway import errors
from gateway.billing.pricing import worst_case_micros
from gateway.engine.call import CallContext
from gateway.jobs.calls import decode, dialect_of
from gateway.jobs.native_settle import NativeMoney, line_index
from gateway.jobs.native_wire import KINDS, decode_result, encode_line, line_key, openai_endpoint, status_of
from gateway.providers.native_batch import NativeBatchClient

log = logging.getLogger("prism.jobs.native")

NATIVE_ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/completions")
_MAX_RATE_WAITS = 1000
# Per upstream batch: (lines, bytes of lines), under each API's own caps (OpenAI 50,000
# requests and a 200 MB file; Anthropic 100,000 requests and 256 MB; Gemini inline
# requests in one 20 MB body). A larger group is split into several upstream batches.
LIMITS = {"openai": (50_000, 190 * 2 ** 20), "anthropic": (100_000, 240 * 2 ** 20),
          "gemini": (10_000, 18 * 2 ** 20)}


class NativeBatches:
    def __init__(self, pipeline: Any, admission: Any, writer: Any, live: Any, calls: Any) -> None:
        self.pipeline = pipeline
        self.admission = admission
        self.writer = writer
        self.live = live
        self.money = NativeMoney(admission, writer, live, calls)
        self._clients: dict[str, tuple[Any, NativeBatchClient]] = {}

    def enabled(self) -> bool:
        return any(p.native_batch and p.enabled for p in self.live.config.providers)

    def client(self, provider_id: str) -> NativeBatchClient:
        pc = self.live.config.provider(provider_id)
        have = self._clients.get(provider_id)
        if have is None or have[0] is not pc:     # a reload replaced the provider
            self._clients[provider_id] = (pc, NativeBatchClient(pc))
        return self._clients[provider_id][1]

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            for _, client in self._clients.values():
                await client.aclose()
            self._clients.clear()

    # ------------------------------------------------------------ one step

    async def step(self, job: sj.Job, owner: str, lines: list[sb.BatchLine]) -> set[str]:
        """Plan, submit and poll this batch's native groups; the ids of the lines still
        held by a pending group (the caller runs the others line by line)."""
        if not self.enabled() and not await self.writer.call(sn.groups, job.id):
            return set()
        if self.enabled():
            await self._plan(job, owner, [ln for ln in lines if ln.state == "queued"])
        for g in await self.writer.call(sn.groups, job.id):
            if g.state in sn.PENDING and await self._orphaned(job, owner, g):
                continue
            if g.state == "preparing":
                await self._drop(job, owner, g)     # a runner died while admitting it
            elif g.state == "submitting":
                await self._submit(job, owner, g)
            elif g.state == "submitted":
                await self._poll(job, owner, g)
        return await self.writer.call(sn.pending_line_ids, job.id)

    async def _orphaned(self, job: sj.Job, owner: str, g: sn.NativeGroup) -> bool:
        """A group whose provider a reload removed: nothing can reach its upstream batch
        any more, so its lines end unbilled (or run line by line if never sent)."""
        if any(p.id == g.provider for p in self.live.config.providers):
            return False
        log.warning("batch %s: provider %s was removed; native batch %s is abandoned",
                    job.id, g.provider, g.upstream_id)
        if g.state != "submitted":
            await self._drop(job, owner, g)
            return True
        rows = await self.writer.call(sn.lines_of, g.id)
        await self._collect(job, owner, g, rows, {}, [], "")
        return True

    def _target(self, line: sb.BatchLine) -> tuple[Any, Any] | None:
        """(provider config, route) when the line's model starts at a native provider."""
        if line.url not in NATIVE_ROUTES:
            return None
        try:
            model = json.loads(line.body).get("model")
            entry = self.live.catalog.resolve(model)
        except (errors.PrismError, ValueError, AttributeError):
            return None
        routes = self.live.catalog.routes(entry.model)
        if not routes or entry.price is None:
            return None
        pc = self.live.config.provider(routes[0].provider)
        if not (pc.native_batch and pc.enabled and pc.kind in KINDS):
            return None
        return pc, routes[0]

    async def _plan(self, job: sj.Job, owner: str, queued: list[sb.BatchLine]) -> None:
        grouped: dict[tuple[str, str], list[sb.BatchLine]] = {}
        for line in queued:
            target = self._target(line)
            if target is not None:
                grouped.setdefault((target[1].provider, target[1].model), []).append(line)
        allowed = await self.admission.allowed_models(job.account_id) if grouped else None
        for (provider, upstream_model), members in grouped.items():
            max_lines, max_bytes = LIMITS[self.live.config.provider(provider).kind]
            gid, lines, size = None, 0, 0
            for line in members:
                if gid is None or lines >= max_lines or size >= max_bytes:
                    if gid is not None and not await self._close_plan(job, owner, gid, lines):
                        return
                    gid, lines, size = f"{job.id}:n{secrets.token_hex(4)}", 0, 0
                    if not await self.writer.call(sn.new_group, job.id, owner, gid, provider,
                                                  upstream_model):
                        return
                got = await self._admit(job, owner, gid, line, provider, upstream_model, allowed)
                if got is None:
                    return               # the batch is no longer ours
                lines, size = lines + bool(got), size + got
            if gid is not None and not await self._close_plan(job, owner, gid, lines):
                return

    async def _close_plan(self, job: sj.Job, owner: str, gid: str, lines: int) -> bool:
        """A group fully admitted: ready to submit (or dropped when no line made it)."""
        if lines:
            return await self.writer.call(sn.move, gid, job.id, owner, ("preparing",),
                                          state="submitting")
        await self.writer.call(sn.drop, gid, job.id, owner)
        return True

    async def _admit(self, job: sj.Job, owner: str, gid: str, line: sb.BatchLine,
                     provider: str, upstream_model: str, allowed: Any) -> int | None:
        """The size of the line as the upstream gets it once admitted and recorded, 0
        when it stays for the line-by-line path, None when the batch is not ours."""
        attempt = await self.writer.call(sb.start_line, line.id, job.id, owner)
        if attempt is None:
            return None
        rid = f"req_{job.id.split('_', 1)[1]}_{line.idx}_{attempt}"
        ctx = CallContext(request_id=rid, route=line.url, dialect=dialect_of(line.url),
                          account_id=job.account_id, key_id=job.key_id)
        ctx.allowed_models = allowed
        body = {k: v for k, v in json.loads(line.body).items()
                if k not in ("async", "stream", "callback_url")}
        waits = 0
        while True:
            try:
                req = decode(line.url, body)
                ctx.model = req.model
                prep = await self.pipeline.prepare(ctx, req)
                break
            except errors.RateLimited as exc:
                # The account's rate limits bind native lines as they bind the others:
                # wait as long as the limiter says (no hold was taken).
                if exc.retry_after is None or waits >= _MAX_RATE_WAITS:
                    return 0
                waits += 1
                await trio.sleep(exc.retry_after)
            except errors.PrismError:
                return 0                 # refused: the line-by-line path says why
        route = prep.selection.routes[0]
        orgs = getattr(self.pipeline.dispatcher, "orgs", None)
        own = ctx.org is not None and orgs is not None and orgs.provider(ctx.org, route.provider)
        if (route.provider, route.model) != (provider, upstream_model) or own \
                or prep.selection.by_mode:
            await self._unadmit(prep)
            return 0
        pc = self.live.config.provider(provider)
        wire = encode_line(pc.kind, pc.api, line_key(line.idx),
                           dataclasses.replace(prep.req, stream=False), upstream_model)
        held = worst_case_micros(prep.entry.price, prep.prompt_tokens, prep.req.max_tokens)
        text = json.dumps(wire)
        self.admission.forget(rid)       # this hold ends in native_settle, not in close
        # Shielded: the hold is open; it must be recorded with its line, or voided.
        with trio.CancelScope(shield=True):
            if not await self.writer.call(sn.add_line, job.id, owner, {
                    "line_id": line.id, "group_id": gid, "attempt": attempt, "request_id": rid,
                    "model_id": prep.entry.model.id, "hold_id": prep.hold_id,
                    "hold_micros": held, "wire": text}):
                await self._unadmit(prep)
                return None
        return len(text) + 1

    async def _unadmit(self, prep: Any) -> None:
        """Void a hold taken for a line that will not go native (no log row: the line
        runs line by line at once, under its own request)."""
        await self.admission.settled_elsewhere(prep.ctx.request_id, None)
        await self.money.release([prep.hold_id])

    async def _drop(self, job: sj.Job, owner: str, g: sn.NativeGroup) -> None:
        rows = await self.writer.call(sn.drop, g.id, job.id, owner)
        await self.money.release([r.hold_id for r in rows])

    # ------------------------------------------------------------ upstream

    async def _submit(self, job: sj.Job, owner: str, g: sn.NativeGroup) -> None:
        rows = sorted(await self.writer.call(sn.lines_of, g.id), key=lambda r: line_index(r.line_id))
        pc = self.live.config.provider(g.provider)
        client = self.client(g.provider)
        # Shielded: once the upstream has the batch, its id must reach the store.
        with trio.CancelScope(shield=True):
            with trio.move_on_after(pc.read_timeout + pc.connect_timeout + 10):
                try:
                    # A runner that died mid-create may have left the batch upstream.
                    uid, fid = await client.find(g.id), None
                    if uid is None:
                        uid, fid = await client.create(
                            [json.loads(r.wire) for r in rows], tag=g.id,
                            upstream_model=g.upstream_model, endpoint=openai_endpoint(pc.api))
                except errors.PrismError as exc:
                    log.warning("batch %s: upstream %s refused the native batch (%s); its "
                                "%d line(s) run line by line", job.id, g.provider,
                                exc.detail or exc.message, len(rows))
                    await self._drop(job, owner, g)
                    return
                await self.writer.call(sn.move, g.id, job.id, owner, ("submitting",),
                                       state="submitted", upstream_id=uid, upstream_file_id=fid)
                log.info("batch %s: %d line(s) sent to %s as native batch %s", job.id,
                         len(rows), g.provider, uid)

    async def _poll(self, job: sj.Job, owner: str, g: sn.NativeGroup) -> bool:
        """One look at a submitted group; True once it has been collected."""
        client = self.client(g.provider)
        try:
            obj = await client.retrieve(g.upstream_id)
            status = status_of(client.kind, obj)
        except errors.UpstreamClientError as exc:
            # The upstream no longer knows the batch: nothing more will come of it.
            log.warning("batch %s: native batch %s is gone upstream (%s)", job.id,
                        g.upstream_id, exc.detail or exc.message)
            obj, status = {}, None
        except errors.PrismError as exc:
            log.warning("batch %s: polling %s failed: %s", job.id, g.upstream_id,
                        exc.detail or exc.message)
            return False
        rows = await self.writer.call(sn.lines_of, g.id)
        lines = {ln.id: ln for ln in await self.writer.call(sb.all_lines, job.id)}
        await self.money.keep(job, owner, rows, lines)
        if status is not None and not status.ended:
            return False
        if status is not None and status.failed:
            # Refused as a whole (validation upstream): nothing ran, so the lines run
            # line by line instead, under new holds.
            log.warning("batch %s: native batch %s failed upstream; its lines run line by "
                        "line", job.id, g.upstream_id)
            await self._drop(job, owner, g)
            return True
        items: list[Any] = []
        if status is not None:
            try:
                items = await client.results(g.upstream_id, obj)
            except errors.PrismError as exc:
                log.warning("batch %s: results of %s failed: %s", job.id, g.upstream_id,
                            exc.detail or exc.message)
                return False
        await self._collect(job, owner, g, rows, lines, items, client.kind)
        return True

    async def _collect(self, job: sj.Job, owner: str, g: sn.NativeGroup, rows: list,
                       lines: dict, items: list, kind: str) -> None:
        results = {}
        api = next((p.api for p in self.live.config.providers if p.id == g.provider), "chat")
        for item in items:
            res = decode_result(kind, api, item)
            if res is not None:
                results[res.key] = res
        multiplier = self.live.config.jobs.batch_price_multiplier
        lines = {ln.id: ln for ln in await self.writer.call(sb.all_lines, job.id)}
        for r in rows:
            line = lines.get(r.line_id)
            if line is None or line.state != "running" or line.attempts != r.attempt:
                continue                 # ended already (a hold that could not be kept)
            res = results.get(line_key(line_index(r.line_id)))
            if res is not None and res.outcome == "succeeded":
                ok = await self.money.settle(job, owner, r, line, res.response, g.provider,
                                             g.upstream_model, multiplier)
            elif res is not None and res.outcome == "errored":
                ok = await self.money.void(job, owner, r, line, res.error, state="failed")
            elif (res is not None and res.outcome == "canceled") or (res is None and g.cancel_sent):
                ok = await self.money.void(job, owner, r, line, None, state="cancelled")
            elif res is not None:        # expired upstream
                ok = await self.money.void(job, owner, r, line, errors.UpstreamTimeout(
                    "The upstream batch expired before this request ran",
                    code="upstream_batch_expired"), state="failed")
            else:
                ok = await self.money.void(job, owner, r, line, errors.UpstreamError(
                    "The upstream batch ended without this request's result"), state="failed")
            if not ok:
                return                   # not ours any more: the next runner collects
        await self.writer.call(sn.move, g.id, job.id, owner, ("submitted",), state="collected")

    # ------------------------------------------------------------ cancel

    async def cancel(self, job: sj.Job, owner: str) -> bool:
        """Forward a cancel to every pending upstream batch and collect the ended ones;
        True when none is pending any more (the batch can finish)."""
        pending = False
        for g in await self.writer.call(sn.groups, job.id):
            if g.state in sn.PENDING and await self._orphaned(job, owner, g):
                continue
            if g.state in ("preparing", "submitting"):
                await self._drop(job, owner, g)
            elif g.state == "submitted":
                if not g.cancel_sent:
                    try:
                        await self.client(g.provider).cancel(g.upstream_id)
                    except errors.PrismError as exc:
                        log.warning("batch %s: cancelling %s upstream: %s", job.id,
                                    g.upstream_id, exc.detail or exc.message)
                    await self.writer.call(sn.move, g.id, job.id, owner, ("submitted",),
                                           cancel_sent=True)
                    g.cancel_sent = True
                pending |= not await self._poll(job, owner, g)
        return not pending
