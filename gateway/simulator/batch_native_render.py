"""How the simulator's batch APIs (simulator/batch_native.py) render a batch: one line's
answer through its dialect's wire adapter, and each upstream's batch object, result file
or operation at a given moment (lines finish evenly over the batch's delay; a cancel
stops them; a batch created to fail ends with no results)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gateway import canonical as c
from gateway import errors
from gateway.simulator.core import SimOptions, respond
from gateway.simulator.faults import parse_fault
from gateway.simulator.wire import adapter_for


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Batch:
    id: str
    kind: str
    items: list[dict]               # the lines as they arrived
    created: float
    delay: float
    extra: dict = field(default_factory=dict)
    cancelled_at: float | None = None
    cancel_delay: float = 0.0

    def done_at(self, i: int) -> float:
        return self.created + self.delay * (i + 1) / max(1, len(self.items))

    def finished(self, now: float) -> list[bool]:
        cut = self.cancelled_at if self.cancelled_at is not None else now
        return [self.done_at(i) <= min(now, cut) for i in range(len(self.items))]

    def ended(self, now: float) -> bool:
        if self.cancelled_at is not None:
            return now >= self.cancelled_at + self.cancel_delay
        return now >= self.created + self.delay


class BatchRender:
    options: SimOptions
    files: dict[str, bytes]

    def _answer(self, wire_path: str, body: Any) -> tuple[int, dict]:
        """(status, body) of one request line, as the synchronous route would answer."""
        wire = adapter_for(wire_path)
        try:
            req = wire.decode(wire_path, body)
        except errors.InvalidRequest as exc:
            return 400, wire.error_body(400, exc.message)
        fault = parse_fault(req)
        if fault.status is not None and fault.status >= 400:
            return fault.status, wire.error_body(fault.status, fault.message or
                                                 f"simulated upstream error {fault.status}")
        resp: c.Response = respond(req, self.options)
        return 200, wire.encode_response(resp)

    def _openai_object(self, b: _Batch, now: float) -> dict:
        done = b.finished(now)
        ended = b.ended(now)
        wall = b.extra["created_wall"]
        status = "in_progress"
        if b.cancelled_at is not None:
            status = "cancelled" if ended else "cancelling"
        elif ended:
            status = "failed" if b.extra.get("fail") else "completed"
        out = err = None
        counts = {"total": len(b.items), "completed": 0, "failed": 0}
        if ended and status != "failed":
            ok, bad = [], []
            for i, item in enumerate(b.items):
                row = {"id": f"batch_req_{b.id}_{i}", "custom_id": item.get("custom_id")}
                if done[i]:
                    st, body = self._answer(item.get("url", "/v1/chat/completions"), item.get("body"))
                    row.update(response={"status_code": st, "request_id": f"req_{b.id}_{i}",
                                         "body": body}, error=None)
                    (ok if st == 200 else bad).append(row)
                else:
                    row.update(response=None, error={"code": "batch_cancelled",
                                                     "message": "Batch was cancelled."})
                    bad.append(row)
            counts.update(completed=len(ok), failed=len(bad))
            out, err = self._file(b, "output", ok), self._file(b, "error", bad)
        else:
            counts["completed"] = sum(done)
        stamp = lambda t: int(wall + (t - b.created)) if t is not None else None  # noqa: E731
        return {"id": b.id, "object": "batch", "endpoint": b.extra["endpoint"],
                "errors": {"object": "list", "data": [{"code": "invalid_request", "line": None,
                                                       "message": "simulated validation failure",
                                                       "param": None}]}
                if status == "failed" else None,
                "input_file_id": b.extra["input_file_id"], "completion_window": "24h",
                "status": status, "output_file_id": out, "error_file_id": err,
                "created_at": int(wall), "in_progress_at": int(wall),
                "expires_at": int(wall) + 86400, "finalizing_at": None,
                "completed_at": stamp(b.created + b.delay) if status == "completed" else None,
                "failed_at": stamp(b.created + b.delay) if status == "failed" else None,
                "expired_at": None,
                "cancelling_at": stamp(b.cancelled_at),
                "cancelled_at": stamp(b.cancelled_at + b.cancel_delay) if status == "cancelled" else None,
                "request_counts": counts, "metadata": b.extra["metadata"]}

    def _file(self, b: _Batch, what: str, rows: list[dict]) -> str | None:
        if not rows:
            return None
        fid = f"file-{what}-{b.id}"
        self.files[fid] = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        return fid

    def _anthropic_object(self, b: _Batch, now: float) -> dict:
        done, ended = b.finished(now), b.ended(now)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for i, item in enumerate(b.items):
            if not done[i]:
                counts["canceled" if ended else "processing"] += 1
            elif not ended:
                counts["succeeded"] += 1
            else:
                st, _ = self._answer("/v1/messages", item.get("params"))
                counts["succeeded" if st == 200 else "errored"] += 1
        wall = b.extra["created_wall"]
        at = lambda t: _iso(wall + (t - b.created)) if t is not None else None  # noqa: E731
        state = "ended" if ended else ("canceling" if b.cancelled_at is not None else "in_progress")
        end_t = (b.cancelled_at + b.cancel_delay if b.cancelled_at is not None
                 else b.created + b.delay)
        return {"id": b.id, "type": "message_batch", "processing_status": state,
                "request_counts": counts, "ended_at": at(end_t) if ended else None,
                "created_at": at(b.created), "expires_at": _iso(wall + 86400),
                "archived_at": None, "cancel_initiated_at": at(b.cancelled_at),
                "results_url": (f"/v1/messages/batches/{b.id}/results" if ended else None)}

    def _anthropic_results(self, b: _Batch, now: float) -> bytes:
        done, lines = b.finished(now), []
        for i, item in enumerate(b.items):
            if not done[i]:
                result: dict = {"type": "canceled"}
            else:
                st, body = self._answer("/v1/messages", item.get("params"))
                result = ({"type": "succeeded", "message": body} if st == 200 else
                          {"type": "errored", "error": body})
            lines.append(json.dumps({"custom_id": item["custom_id"], "result": result}))
        return ("\n".join(lines) + "\n").encode()

    def _gemini_operation(self, b: _Batch, now: float) -> dict:
        done, ended = b.finished(now), b.ended(now)
        wall = b.extra["created_wall"]
        state = "BATCH_STATE_RUNNING"
        if ended:
            state = "BATCH_STATE_CANCELLED" if b.cancelled_at is not None else (
                "BATCH_STATE_FAILED" if b.extra.get("fail") else "BATCH_STATE_SUCCEEDED")
        name = f"batches/{b.id}"
        path = f"/v1beta/models/{b.extra['model']}:generateContent"
        answers = []
        failed = ended and state == "BATCH_STATE_FAILED"
        if ended and not failed:
            for i, item in enumerate(b.items):
                if not done[i]:
                    continue
                st, body = self._answer(path, item.get("request"))
                entry = {"response": body} if st == 200 else {"error": body.get("error", body)}
                if isinstance(item.get("metadata"), dict):
                    entry["metadata"] = item["metadata"]
                answers.append(entry)
        ok = sum(1 for a in answers if "response" in a)
        meta = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
                "model": f"models/{b.extra['model']}", "displayName": b.extra["display"],
                "name": name, "createTime": _iso(wall), "updateTime": _iso(time.time()),
                "state": state,
                "batchStats": {"requestCount": str(len(b.items)),
                               "successfulRequestCount": str(ok),
                               "failedRequestCount": str(len(answers) - ok),
                               "pendingRequestCount": str(0 if ended else len(b.items) - sum(done))}}
        op: dict = {"name": name, "metadata": meta}
        if failed:
            meta["endTime"] = _iso(time.time())
            op.update(done=True, error={"code": 3, "message": "simulated batch failure"})
        elif ended:
            meta["endTime"] = _iso(time.time())
            op["done"] = True
            op["response"] = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
                                       "GenerateContentBatchOutput",
                              "inlinedResponses": {"inlinedResponses": answers}}
        return op
