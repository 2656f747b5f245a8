"""The HTTP simulator's batch APIs, each in its upstream's own wire format:

    OpenAI      POST /v1/files (multipart, purpose=batch), GET /v1/files/{id}/content,
                POST /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel
                (also without the /v1 prefix, as an OpenAI base_url ending in /v1 sends)
    Anthropic   POST /v1/messages/batches, GET /v1/messages/batches/{id},
                GET /v1/messages/batches/{id}/results (JSONL), POST .../{id}/cancel
    Gemini      POST /v1beta/models/{m}:batchGenerateContent (inline requests) answers a
                long-running operation ``batches/{id}``; GET /v1beta/batches/{id} (done,
                with inlined responses, once ended); POST /v1beta/batches/{id}:cancel

A batch's lines finish one by one, evenly over ``delay`` seconds from its creation
(POST /_sim/batches/config {"delay": s, "cancel_delay": s, "refuse": bool,
"create_delay": s, "fail": bool} sets them; refuse makes every create answer 500,
create_delay holds the answer to a create that was accepted, fail makes OpenAI and
Gemini batches end failed with no results). GET /v1/batches and GET /v1beta/batches list
the batches, newest first. A cancel ends the batch cancel_delay later: lines
finished by the cancel keep their results, the rest are cancelled. Each line is answered
by the simulator's brain (core.respond) through the dialect's wire adapter, so a fault
directive in a line's prompt fails that line alone. GET /_sim/batches counts what
arrived (submissions and lines per dialect, polls, cancels), so a test can prove a
batch was sent exactly once and nothing went line by line.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import trio

from gateway import errors
from gateway.codecs import multipart
from gateway.simulator.batch_native_render import BatchRender, _Batch
from gateway.simulator.core import SimOptions
from gateway.simulator.wire import adapter_for, read_body

MAX_BODY = 64 * 1024 * 1024
_OPENAI = re.compile(r"^(?:/v1)?/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?$")
_ANTHROPIC = re.compile(r"^/v1/messages/batches(?:/([^/]+))?(?:/(results|cancel))?$")
_GEMINI_CREATE = re.compile(r"^/v1(?:beta)?/models/([^/:]+):batchGenerateContent$")
_GEMINI_BATCH = re.compile(r"^/v1(?:beta)?/batches(?:/([^/:]+)(:cancel)?)?$")


class NativeBatchSim(BatchRender):
    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.reset()

    def reset(self) -> None:
        self.delay = 1.0
        self.cancel_delay = 0.2
        self.refuse = False
        self.create_delay = 0.0
        self.fail = False
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.submissions = {"openai": 0, "anthropic": 0, "gemini": 0}
        self.lines = {"openai": 0, "anthropic": 0, "gemini": 0}
        self.polls = 0
        self.cancels = 0

    def stats(self) -> dict[str, Any]:
        return {"submissions": dict(self.submissions), "lines": dict(self.lines),
                "polls": self.polls, "cancels": self.cancels, "batches": len(self.batches)}

    # ------------------------------------------------------------ routing

    async def handle(self, scope: dict, receive: Any, send: Any, headers: dict[str, str]) -> bool:
        from gateway.simulator.server import _send_error, _send_json
        path, method = scope["path"], scope["method"]
        if path == "/_sim/batches":
            if method == "POST":
                return False
            await _send_json(send, 200, self.stats())
            return True
        if path == "/_sim/batches/config" and method == "POST":
            cfg = json.loads(await read_body(receive, MAX_BODY) or b"{}")
            self.delay = float(cfg.get("delay", self.delay))
            self.cancel_delay = float(cfg.get("cancel_delay", self.cancel_delay))
            self.refuse = bool(cfg.get("refuse", self.refuse))
            self.create_delay = float(cfg.get("create_delay", self.create_delay))
            self.fail = bool(cfg.get("fail", self.fail))
            await _send_json(send, 200, {"delay": self.delay, "cancel_delay": self.cancel_delay,
                                         "refuse": self.refuse, "create_delay": self.create_delay,
                                         "fail": self.fail})
            return True
        m_oa = _OPENAI.match(path)
        m_an = _ANTHROPIC.match(path)
        m_gc = _GEMINI_CREATE.match(path)
        m_gb = _GEMINI_BATCH.match(path)
        if not (m_oa or m_an or m_gc or m_gb):
            return False
        if m_an or m_oa:
            wire = adapter_for("/v1/messages" if m_an else "/v1/chat/completions")
        else:
            wire = adapter_for("/v1beta/models/x:generateContent")
        query = scope.get("query_string", b"").decode("latin-1")
        if not wire.credential(headers, query):
            await _send_error(send, 401, "Missing credentials for the simulated upstream", wire=wire)
            return True
        body = await read_body(receive, MAX_BODY) if method == "POST" else b""
        made = sum(self.submissions.values())
        try:
            status, out, raw = self._route(path, method, headers, body or b"", m_oa, m_an,
                                           m_gc, m_gb)
        except errors.PrismError as exc:
            await _send_error(send, exc.status if exc.status < 500 else 500, exc.message, wire=wire)
            return True
        if sum(self.submissions.values()) > made and self.create_delay > 0:
            # Created, and slow to say so: a gateway killed now never learns the id.
            await trio.sleep(self.create_delay)
        if raw is not None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/binary"),
                                    (b"content-length", str(len(raw)).encode())]})
            await send({"type": "http.response.body", "body": raw})
            return True
        await _send_json(send, status, out)
        return True

    def _route(self, path, method, headers, body, m_oa, m_an, m_gc, m_gb):
        now = time.monotonic()
        if m_oa:
            what, oid, verb = m_oa.groups()
            if what == "files" and method == "POST" and oid is None:
                return 200, self._upload(headers, body), None
            if what == "files" and verb == "content" and method == "GET":
                if oid not in self.files:
                    raise errors.NotFound(f"No such File object: {oid}")
                return 200, None, self.files[oid]
            if what == "batches" and method == "POST" and oid is None:
                return 200, self._openai_create(json.loads(body or b"{}"), now), None
            if what == "batches" and method == "GET" and oid is None:
                return 200, {"object": "list", "has_more": False, "data": [
                    self._openai_object(b, now) for b in reversed(self.batches.values())
                    if b.kind == "openai"]}, None
            batch = self._get(oid, "openai")
            if verb == "cancel" and method == "POST":
                self._cancel(batch, now)
            elif method == "GET" and verb is None:
                self.polls += 1
            else:
                raise errors.NotFound(f"Unknown route {method} {path}")
            return 200, self._openai_object(batch, now), None
        if m_an:
            bid, verb = m_an.groups()
            if bid is None and method == "POST":
                return 200, self._anthropic_create(json.loads(body or b"{}"), now), None
            batch = self._get(bid, "anthropic")
            if verb == "cancel" and method == "POST":
                self._cancel(batch, now)
            elif verb == "results" and method == "GET":
                if not batch.ended(now):
                    raise errors.InvalidRequest(f"Message Batch {bid} has not yet ended")
                return 200, None, self._anthropic_results(batch, now)
            elif method == "GET" and verb is None:
                self.polls += 1
            else:
                raise errors.NotFound(f"Unknown route {method} {path}")
            return 200, self._anthropic_object(batch, now), None
        if m_gc:
            if method != "POST":
                raise errors.NotFound(f"Unknown route {method} {path}")
            return 200, self._gemini_create(m_gc.group(1), json.loads(body or b"{}"), now), None
        bid, cancel = m_gb.groups()
        if bid is None and method == "GET":
            return 200, {"operations": [self._gemini_operation(b, now) for b in
                                        reversed(self.batches.values()) if b.kind == "gemini"]}, None
        batch = self._get(bid, "gemini")
        if cancel and method == "POST":
            self._cancel(batch, now)
            return 200, {}, None
        if method != "GET" or cancel:
            raise errors.NotFound(f"Unknown route {method} {path}")
        self.polls += 1
        return 200, self._gemini_operation(batch, now), None

    def _get(self, bid: str | None, kind: str) -> _Batch:
        batch = self.batches.get(bid or "")
        if batch is None or batch.kind != kind:
            raise errors.NotFound(f"No batch with id {bid!r}")
        return batch

    def _cancel(self, batch: _Batch, now: float) -> None:
        if batch.cancelled_at is None and not batch.ended(now):
            self.cancels += 1
            batch.cancelled_at = now
            batch.cancel_delay = self.cancel_delay

    def _new(self, kind: str, prefix: str, items: list[dict], now: float, **extra: Any) -> _Batch:
        if self.refuse:
            raise errors.UpstreamError("simulated batch API outage")
        if not items:
            raise errors.InvalidRequest("a batch needs at least one request")
        batch = _Batch(prefix + secrets.token_hex(10), kind, items, now, self.delay,
                       {**extra, "fail": self.fail})
        self.batches[batch.id] = batch
        self.submissions[kind] += 1
        self.lines[kind] += len(items)
        return batch

    # ------------------------------------------------------------ answering one line

    # ------------------------------------------------------------ OpenAI

    def _upload(self, headers: dict[str, str], body: bytes) -> dict:
        form = multipart.parse(headers.get("content-type", ""), body, MAX_BODY)
        upload = form.files.get("file")
        if upload is None:
            raise errors.InvalidRequest("file is required")
        fid = "file-" + secrets.token_hex(12)
        self.files[fid] = upload.data
        return {"id": fid, "object": "file", "bytes": len(upload.data),
                "created_at": int(time.time()), "filename": upload.filename,
                "purpose": form.get("purpose") or "batch", "status": "processed"}

    def _openai_create(self, spec: dict, now: float) -> dict:
        raw = self.files.get(spec.get("input_file_id") or "")
        if raw is None:
            raise errors.InvalidRequest("input_file_id does not name an uploaded file")
        items = [json.loads(x) for x in raw.splitlines() if x.strip()]
        batch = self._new("openai", "batch_", items, now, endpoint=spec.get("endpoint"),
                          input_file_id=spec["input_file_id"], metadata=spec.get("metadata"),
                          created_wall=time.time())
        return self._openai_object(batch, now)

    # ------------------------------------------------------------ Anthropic

    def _anthropic_create(self, spec: dict, now: float) -> dict:
        reqs = spec.get("requests")
        if not isinstance(reqs, list) or not all(isinstance(r, dict) and re.fullmatch(
                r"[a-zA-Z0-9_-]{1,64}", str(r.get("custom_id", ""))) for r in reqs):
            raise errors.InvalidRequest("requests: each needs a custom_id of 1-64 characters "
                                        "[a-zA-Z0-9_-] and params")
        batch = self._new("anthropic", "msgbatch_", reqs, now, created_wall=time.time())
        return self._anthropic_object(batch, now)

    # ------------------------------------------------------------ Gemini

    def _gemini_create(self, model: str, spec: dict, now: float) -> dict:
        batch = spec.get("batch") if isinstance(spec.get("batch"), dict) else {}
        cfg = batch.get("input_config") or batch.get("inputConfig") or {}
        reqs = (cfg.get("requests") or {}).get("requests") if isinstance(cfg, dict) else None
        if not isinstance(reqs, list):
            raise errors.InvalidRequest("batch.input_config.requests.requests is required")
        b = self._new("gemini", "", reqs, now, model=model, created_wall=time.time(),
                      display=batch.get("display_name") or batch.get("displayName") or "")
        return self._gemini_operation(b, now)
