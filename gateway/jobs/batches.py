"""Batches (/v1/batches, /-/batches): validate the input file, run its lines through the
engine at bounded concurrency, write the output and error files.

    validating   the whole file is checked before any upstream call: JSON per line,
                 custom_id present and unique, method POST, url equal to the batch's
                 endpoint, a model that exists and serves the endpoint, a body the
                 route's codec accepts, the size and line limits. Any error fails the
                 batch with every problem listed (errors.data, with line numbers).
                 A batch created with endpoint "mixed" (Prism's extension) takes lines
                 for any of the batchable routes, each running on its own url.
    in_progress  each line is one engine call (gateway.jobs.calls) at
                 jobs.batch_price_multiplier of the list price; its settlement and its
                 result are one transaction, guarded by the batch's lease and the
                 line's attempt, so a line is charged once across retries and restarts.
                 Lines routed to a provider with native_batch go to its own batch API
                 instead (gateway.jobs.native): the batch then returns to the queue
                 between polls of the upstream batch, and finishes once it has ended.
    finalizing   output (status 200 lines) and error (the rest) files, OpenAI's batch
                 output format with each line's custom_id.
    cancelling   in-flight lines are cut (their holds voided), lines not started are
                 cancelled; lines that finished stay billed and in the output file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from typing import Any, Callable

import trio

import store.files as sf
import store.batch_lines as sb
import store.batch_native as sbn
import store.jobs as sj
from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.engine.call import CallContext
from gateway.jobs.calls import ROUTES, Done, JobCalls, decode, dialect_of
from gateway.jobs.completions import retry_delay

log = logging.getLogger("prism.jobs.batches")

_CAPABILITY = {"/v1/embeddings": "embeddings"}
BATCH_ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions")
# Prism's extension: a batch whose lines may each name any of BATCH_ROUTES.
MIXED = "mixed"
MAX_ERRORS_LISTED = 100
MAX_CUSTOM_ID = 512
WINDOWS = {"24h": 86400}
# A line waits for the account's rate limit at most this many times (each wait as long
# as the limiter says); past that it fails with the rate limit's error.
_MAX_RATE_WAITS = 1000


def _problem(line: int | None, code: str, message: str, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


class BatchHandler:
    kind = "batch"

    def __init__(self, calls: JobCalls, admission: Any, resources: Any, catalog: Callable[[], Any],
                 config: Callable[[], Any], clock: Callable[[], float], native: Any = None) -> None:
        self.calls = calls
        self.native = native     # gateway.jobs.native.NativeBatches (upstream batch APIs)
        self.admission = admission
        self.resources = resources
        self.catalog = catalog
        self.config = config
        self.clock = clock

    @property
    def writer(self) -> Any:
        return self.calls.writer

    # ------------------------------------------------------------ validation

    def validate(self, raw: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
        """(lines, problems) for the input file's bytes; pure apart from the catalog."""
        cfg = self.config()
        problems: list[dict] = []
        if len(raw) > cfg.batch_max_bytes:
            return [], [_problem(None, "file_too_large", f"the input file is {len(raw)} bytes; "
                                 f"at most {cfg.batch_max_bytes} are accepted")]
        out: list[dict] = []
        seen: set[str] = set()
        catalog = self.catalog()
        for n, text in enumerate(raw.split(b"\n"), start=1):
            if not text.strip():
                continue
            if len(out) >= cfg.batch_max_lines:
                problems.append(_problem(n, "too_many_requests",
                                         f"at most {cfg.batch_max_lines} requests per batch"))
                break
            try:
                item = json.loads(text)
            except ValueError:
                problems.append(_problem(n, "invalid_json_line", "the line is not valid JSON"))
                continue
            if not isinstance(item, dict):
                problems.append(_problem(n, "invalid_json_line", "the line is not a JSON object"))
                continue
            cid = item.get("custom_id")
            if not isinstance(cid, str) or not cid or len(cid) > MAX_CUSTOM_ID:
                problems.append(_problem(n, "missing_custom_id", "custom_id must be a non-empty "
                                         f"string of at most {MAX_CUSTOM_ID} characters", "custom_id"))
                continue
            if cid in seen:
                problems.append(_problem(n, "duplicate_custom_id",
                                         f"custom_id {cid!r} appears more than once", "custom_id"))
                continue
            seen.add(cid)
            if item.get("method", "POST") != "POST":
                problems.append(_problem(n, "invalid_method", "method must be POST", "method"))
                continue
            url = item.get("url")
            if url != endpoint and not (endpoint == MIXED and url in BATCH_ROUTES):
                problems.append(_problem(n, "mismatched_endpoint", f"url must be the batch's "
                                         f"endpoint {endpoint}, not {url!r}", "url"))
                continue
            body = item.get("body")
            if not isinstance(body, dict):
                problems.append(_problem(n, "invalid_body", "body must be a JSON object", "body"))
                continue
            try:
                if body.get("stream"):
                    raise errors.InvalidRequest("streaming is not available in a batch",
                                                field="stream")
                decode(url, body)
                entry = catalog.resolve(body.get("model"))
                cap = _CAPABILITY.get(url, "chat")
                if cap not in entry.model.capabilities:
                    raise errors.InvalidRequest(f"model {body.get('model')!r} does not serve "
                                                f"{url}", field="model",
                                                code="model_not_supported")
            except errors.PrismError as exc:
                problems.append(_problem(n, exc.code or exc.type_name, exc.message,
                                         getattr(exc, "field", None) or "body"))
                continue
            out.append({"custom_id": cid, "url": url, "body": json.dumps(body)})
        if not out and not problems:
            problems.append(_problem(None, "empty_file", "the input file holds no requests"))
        return out, problems

    # ------------------------------------------------------------ running

    async def run(self, job: sj.Job, owner: str) -> None:
        data = job.data()
        if job.cancel_requested:
            # Cancelled while queued with lines already run (after a restart): finish
            # it here so the lines that ran reach the output file.
            await self.cancelled(job, owner)
            return
        if job.phase == "validating":
            limit = self.config().batch_max_bytes
            try:
                row = await self.resources.files.get(job.account_id, data["input_file_id"])
                if row.bytes > limit:
                    lines, problems = [], [_problem(None, "file_too_large", f"the input file is "
                                                    f"{row.bytes} bytes; at most {limit} are "
                                                    "accepted (jobs.batch_max_bytes)")]
                else:
                    _, raw = await self.resources.files.read_bytes(job.account_id, row.id)
                    # Tens of thousands of lines: off the event loop.
                    lines, problems = await trio.to_thread.run_sync(
                        self.validate, raw, data["endpoint"])
            except errors.NotFound:
                lines, problems = [], [_problem(None, "file_not_found", "the input file is gone")]
            if problems:
                await self.writer.call(sj.update_owned, job.id, owner, state="failed",
                                       phase="failed", result=json.dumps(
                                           {"errors": problems[:MAX_ERRORS_LISTED]}),
                                       expires_at=self._sweep_at())
                return
            rows = [{"id": f"{job.id}:{i}", "batch_id": job.id, "idx": i,
                     "custom_id": ln["custom_id"], "url": ln["url"], "body": ln["body"]}
                    for i, ln in enumerate(lines)]
            if not await self.writer.call(sb.start_batch, job.id, owner, rows):
                return
        cfg = self.config()
        limiter = trio.CapacityLimiter(max(1, cfg.batch_line_concurrency))
        pending = await self.writer.call(sb.open_lines, job.id)
        # Lines an upstream's own batch API holds (gateway.jobs.native) are not run here.
        held = await self.native.step(job, owner, pending) if self.native is not None else set()
        deadline = data.get("deadline") or float("inf")
        async with trio.open_nursery() as nursery:
            for line in pending:
                if line.id not in held:
                    nursery.start_soon(self._line, job, owner, line.url, line, limiter, deadline)
        if held and await self._native_pending(job, owner, deadline):
            return
        if await self.writer.call(sb.open_lines, job.id) or (
                self.native is not None and self.clock() > deadline and
                (await self.writer.call(sb.line_counts, [job.id]))[job.id].get("cancelled")):
            # Lines left unstarted past the completion window (or cancelled upstream when
            # it ended, see _native_pending): the batch expired.
            await self.writer.call(sb.cancel_open_lines, job.id)
            await self._finish(job, owner, "expired", "expired")
            return
        await self._finish(job, owner, "succeeded", "completed")

    async def _line(self, job: sj.Job, owner: str, endpoint: str, line: sb.BatchLine,
                    limiter: trio.CapacityLimiter, deadline: float) -> None:
        cfg = self.config()
        limited = 0   # waits for the account's rate limit: these are not failures
        async with limiter:
            while True:
                if self.clock() > deadline:
                    return   # past the completion window: left for the expiry above
                attempt = await self.writer.call(sb.start_line, line.id, job.id, owner)
                if attempt is None:
                    return
                ctx = CallContext(request_id=f"req_{job.id.split('_', 1)[1]}_{line.idx}_{attempt}",
                                  route=endpoint, dialect=dialect_of(endpoint),
                                  account_id=job.account_id, key_id=job.key_id)
                ctx.allowed_models = await self.admission.allowed_models(job.account_id)

                def record(done: Done, attempt=attempt):
                    return sb.line_writer(line.id, job.id, owner, attempt, state="succeeded",
                                          status_code=200, response=json.dumps(done.body),
                                          cost_micros=done.cost_micros, request_id=done.request_id)
                try:
                    await self.calls.run(ctx, endpoint, json.loads(line.body),
                                         multiplier=cfg.batch_price_multiplier, record=record)
                    return
                except sj.LeaseLost:
                    return
                except errors.PrismError as exc:
                    if isinstance(exc, errors.RateLimited) and exc.retry_after is not None \
                            and limited < _MAX_RATE_WAITS:
                        limited += 1
                        await trio.sleep(exc.retry_after)
                        continue
                    delay = retry_delay(cfg, exc, attempt - limited)
                    if delay is not None:
                        await trio.sleep(delay)
                        continue
                    status, body = self.calls.error_body(exc, ctx.dialect)
                    await self.writer.call(sb.end_line, sb.line_writer(
                        line.id, job.id, owner, attempt, state="failed", status_code=status,
                        error=json.dumps(body), request_id=ctx.request_id))
                    return

    async def _native_pending(self, job: sj.Job, owner: str, deadline: float) -> bool:
        """Upstream batches still running: back to the queue until the next poll (True),
        or, past the completion window, cancelled upstream and the batch expired."""
        if not await self.writer.call(sbn.pending_line_ids, job.id):
            return False
        if self.clock() > deadline and await self.native.cancel(job, owner):
            await self.writer.call(sb.cancel_open_lines, job.id)
            await self._finish(job, owner, "expired", "expired")
            return True
        await self.writer.call(sj.update_owned, job.id, owner, state="queued",
                               not_before=self.clock() + self.config().native_poll_interval)
        return True

    async def cancelled(self, job: sj.Job, owner: str) -> None:
        if self.native is not None and not await self.writer.call(sj.update_owned, job.id, owner):
            return   # back in the queue already (between polls) or another runner's now
        if self.native is not None and not await self.native.cancel(job, owner):
            # Cancelled upstream, not yet ended there: look again at the next poll.
            await self.writer.call(sj.update_owned, job.id, owner, state="queued",
                                   not_before=self.clock() + self.config().native_poll_interval)
            return
        await self.writer.call(sb.cancel_open_lines, job.id)
        await self._finish(job, owner, "cancelled", "cancelled")

    def _sweep_at(self) -> float:
        return self.clock() + max(self.config().result_ttl_seconds, 30 * 86400)

    async def _finish(self, job: sj.Job, owner: str, state: str, phase: str) -> None:
        # A cancelled batch goes cancelling -> cancelled (OpenAI's machine), the rest
        # through finalizing; either way this guarded write says the batch is still ours.
        moving = {} if phase == "cancelled" else {"phase": "finalizing"}
        if not await self.writer.call(sj.update_owned, job.id, owner, **moving):
            return   # ended already (a cancel that raced the last line), or not ours
        lines = await self.writer.call(sb.all_lines, job.id)
        out, err = [], []
        for ln in lines:
            rid = ln.request_id
            item = {"id": f"batch_req_{ln.id.replace(':', '_')}", "custom_id": ln.custom_id}
            if ln.state == "succeeded":
                item.update(response={"status_code": 200, "request_id": rid,
                                      "body": json.loads(ln.response)}, error=None)
                out.append(item)
            elif ln.state == "failed":
                item.update(response={"status_code": ln.status_code, "request_id": rid,
                                      "body": json.loads(ln.error or "{}")}, error=None)
                err.append(item)
            elif state == "expired":
                item.update(response=None, error={"code": "batch_expired",
                                                  "message": "the batch's completion window "
                                                             "ended before this request ran"})
                err.append(item)
            else:
                item.update(response=None, error={"code": "batch_cancelled",
                                                  "message": "the batch was cancelled before "
                                                             "this request ran"})
                err.append(item)
        output_id = await self._write_file(job, out, "output") if out else None
        error_id = await self._write_file(job, err, "errors") if err else None
        cost = sum(ln.cost_micros for ln in lines)
        await self.writer.call(sj.update_owned, job.id, owner, state=state, phase=phase,
                               cost_micros=cost, expires_at=self._sweep_at(),
                               result=json.dumps({"output_file_id": output_id,
                                                  "error_file_id": error_id}))

    async def _write_file(self, job: sj.Job, items: list[dict], what: str) -> str:
        data = "".join(json.dumps(i, separators=(",", ":")) + "\n" for i in items).encode()
        blobs = self.resources.blobs
        staged = blobs.staging_path()

        def stage() -> str:
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            with open(staged, "wb") as f:
                f.write(data)
            return hashlib.sha256(data).hexdigest()
        digest = await trio.to_thread.run_sync(stage)
        row = {"id": "file-" + secrets.token_hex(12), "account_id": job.account_id,
               "filename": f"{job.id}_{what}.jsonl", "purpose": "batch_output",
               "bytes": len(data), "sha256": digest, "created_at": time.time(), "expires_at": None}
        # Output files are the gateway's, not an upload: the account's cap does not refuse them.
        with trio.CancelScope(shield=True):
            await self.writer.call(sf.insert_file, row, cap=2 ** 62, staged=staged,
                                   blob_path=blobs.path_of(digest))
        return row["id"]


def _at(t: float | None) -> int | None:
    return None if t is None else int(t)


def batch_object(job: sj.Job, counts: dict[str, int]) -> dict:
    data = job.data()
    res = job.output() or {}
    phase = job.phase or "validating"
    done_at = int(job.finished_at) if job.finished_at else None
    total = sum(v for k, v in counts.items() if k != "cost")
    return {
        "id": job.id, "object": "batch", "endpoint": data["endpoint"],
        "errors": {"object": "list", "data": res["errors"]} if res.get("errors") else None,
        "input_file_id": data["input_file_id"], "completion_window": data["completion_window"],
        "status": phase, "output_file_id": res.get("output_file_id"),
        "error_file_id": res.get("error_file_id"), "created_at": int(job.created_at),
        "in_progress_at": _at(job.in_progress_at),
        "expires_at": int(data.get("deadline") or job.created_at + WINDOWS["24h"]),
        "finalizing_at": _at(job.finalizing_at), "completed_at": done_at if phase == "completed" else None,
        "failed_at": done_at if phase == "failed" else None,
        "expired_at": done_at if phase == "expired" else None,
        "cancelling_at": _at(job.cancelling_at), "cancelled_at": done_at if phase == "cancelled" else None,
        "request_counts": {"total": total, "completed": counts.get("succeeded", 0),
                           "failed": counts.get("failed", 0) + counts.get("cancelled", 0)},
        "metadata": data.get("metadata"),
        "cost_micros": counts.get("cost", 0), "cost_usd": format_usd(counts.get("cost", 0)),
    }


__all__ = ["BatchHandler", "batch_object", "ROUTES", "WINDOWS"]
