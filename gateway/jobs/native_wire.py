"""The wire of upstream batch APIs, pure: one batch line in the upstream's dialect, and
one upstream result back to a canonical Response (or why there is none).

Lines are encoded exactly as the provider kind encodes a single call
(gateway/providers/openai.py, anthropic.py, gemini.py: the same codecs, the same
non-stream body); only the envelope differs:

    openai      a JSONL line {custom_id, method, url, body} of an uploaded input file;
                results: {custom_id, response: {status_code, body}, error}
    anthropic   {custom_id, params} in POST /v1/messages/batches;
                results: {custom_id, result: {type: succeeded|errored|canceled|expired,
                message | error}}
    gemini      {request, metadata: {key}} inline in models/{m}:batchGenerateContent;
                results: inlinedResponses[] of {response | error, metadata: {key}}

The key each line carries upstream is Prism's own (``line-<index>``): a client's
custom_id may hold characters an upstream refuses (Anthropic allows [A-Za-z0-9_-]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import canonical as c
from gateway import errors
from gateway.codecs import anthropic, gemini, openai_chat, openai_responses_up

KINDS = ("openai", "anthropic", "gemini")
OUTCOMES = ("succeeded", "errored", "canceled", "expired")


@dataclass(frozen=True)
class Result:
    """One upstream line's outcome: ``response`` exactly when it succeeded."""
    key: str
    outcome: str
    response: c.Response | None = None
    error: errors.PrismError | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        if (self.outcome == "succeeded") != (self.response is not None):
            raise ValueError("a succeeded result carries a response, and only it")


def line_key(idx: int) -> str:
    return f"line-{idx}"


def openai_endpoint(api: str) -> str:
    return "/v1/responses" if api == "responses" else "/v1/chat/completions"


def encode_line(kind: str, api: str, key: str, req: c.Request, upstream_model: str) -> dict:
    """One line for the upstream's batch, the body as its provider would send it."""
    if kind == "openai":
        if api == "responses":
            body = openai_responses_up.from_canonical_request(req, upstream_model)
            body.pop("stream", None)
        else:
            body = openai_chat.from_canonical_request(req, upstream_model)
            body["stream"] = False
            body.pop("stream_options", None)
        return {"custom_id": key, "method": "POST", "url": openai_endpoint(api), "body": body}
    if kind == "anthropic":
        body = anthropic.from_canonical_request(req, upstream_model)
        body.pop("stream", None)
        return {"custom_id": key, "params": body}
    if kind == "gemini":
        return {"request": gemini.from_canonical_request(req, upstream_model),
                "metadata": {"key": key}}
    raise ValueError(f"no native batch API for kind {kind!r}")


def _failed(status: int | None, detail: str) -> errors.PrismError:
    """An upstream's refusal of one line, in our terms (its words go to detail only)."""
    if status is not None and 400 <= status < 500 and status not in (401, 403, 429):
        return errors.UpstreamClientError(
            "The upstream provider refused the request (upstream status class 4xx)",
            detail=detail)
    return errors.UpstreamError("The upstream provider failed the request in its batch",
                                detail=detail)


def _message(err: Any) -> str:
    if isinstance(err, dict):
        inner = err.get("error") if isinstance(err.get("error"), dict) else err
        return str(inner.get("message") or inner.get("type") or inner)[:500]
    return str(err)[:500]


def _decode(fn: Any, body: Any, key: str) -> Result:
    try:
        return Result(key, "succeeded", response=fn(body))
    except errors.PrismError as exc:
        return Result(key, "errored", error=errors.UpstreamProtocolError(
            "The upstream provider sent an invalid response", detail=exc.message))


def decode_result(kind: str, api: str, item: Any) -> Result | None:
    """One upstream result line; None when it is not one (no key)."""
    if not isinstance(item, dict):
        return None
    if kind == "openai":
        key = item.get("custom_id")
        if not isinstance(key, str):
            return None
        resp = item.get("response") if isinstance(item.get("response"), dict) else {}
        status = resp.get("status_code")
        if status == 200 and isinstance(resp.get("body"), dict):
            fn = (openai_responses_up.to_canonical_response if api == "responses"
                  else openai_chat.to_canonical_response)
            return _decode(fn, resp["body"], key)
        err = item.get("error") or resp.get("body")
        code = err.get("code") if isinstance(err, dict) else None
        if code == "batch_expired":
            return Result(key, "expired")
        if code == "batch_cancelled":
            return Result(key, "canceled")
        return Result(key, "errored", error=_failed(status if isinstance(status, int) else None,
                                                    _message(err)))
    if kind == "anthropic":
        key = item.get("custom_id")
        res = item.get("result")
        if not isinstance(key, str) or not isinstance(res, dict):
            return None
        kind_of = res.get("type")
        if kind_of == "succeeded":
            return _decode(anthropic.to_canonical_response, res.get("message"), key)
        if kind_of in ("canceled", "expired"):
            return Result(key, kind_of)
        err = res.get("error") if isinstance(res.get("error"), dict) else {}
        inner = err.get("error") if isinstance(err.get("error"), dict) else err
        status = 400 if inner.get("type") == "invalid_request_error" else 500
        return Result(key, "errored", error=_failed(status, _message(err)))
    if kind == "gemini":
        meta = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
        key = meta.get("key")
        if not isinstance(key, str):
            return None
        if isinstance(item.get("response"), dict):
            return _decode(gemini.to_canonical_response, item["response"], key)
        err = item.get("error") if isinstance(item.get("error"), dict) else {}
        if err.get("status") == "CANCELLED":
            return Result(key, "canceled")
        code = err.get("code") if isinstance(err.get("code"), int) else None
        status = code if code is not None and 100 <= code < 600 else 500
        return Result(key, "errored", error=_failed(status, _message(err)))
    raise ValueError(f"no native batch API for kind {kind!r}")


# ------------------------------------------------------------ upstream batch status

@dataclass(frozen=True)
class Status:
    """Where an upstream batch stands: ``ended`` once its results are final."""
    ended: bool
    state: str                     # the upstream's own word, for logs
    failed: bool = False           # ended with no results at all (refused, failed)


_OPENAI_ENDED = {"completed", "expired", "cancelled", "failed"}
_GEMINI_ENDED = {"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED", "PARTIALLY_SUCCEEDED"}


def status_of(kind: str, obj: Any) -> Status:
    if not isinstance(obj, dict):
        raise errors.UpstreamProtocolError("The upstream provider sent an invalid batch")
    if kind == "openai":
        state = str(obj.get("status"))
        return Status(state in _OPENAI_ENDED, state, failed=state == "failed")
    if kind == "anthropic":
        state = str(obj.get("processing_status"))
        return Status(state == "ended", state)
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else obj
    raw = str(meta.get("state", ""))
    # BATCH_STATE_* in the v1beta batch API, JOB_STATE_* in its first release.
    state = raw.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    ended = state in _GEMINI_ENDED or bool(obj.get("done"))
    return Status(ended, raw, failed=state == "FAILED")

