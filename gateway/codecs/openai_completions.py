"""OpenAI legacy Completions (POST /v1/completions) <-> the canonical model, client side.

Owns the ``text_completion`` shapes: request bodies in (``to_canonical_request``), the
response out (``from_canonical_response``) and stream chunks out (``StreamEncoder``).
No upstream speaks this dialect through us. Pure: no I/O; SSE framing and the
``data: [DONE]`` line belong to the http layer.

Rules chosen:
- The prompt becomes the one user message of a chat request. Upstreams are chat
  models, so the text that comes back is a reply to the prompt, not a raw
  continuation of it.
- ``prompt`` is a string or an array holding exactly one string. Token-id arrays and
  batches of several prompts are refused with a 400 that says so.
- ``max_tokens`` defaults to 16, as on OpenAI's legacy endpoint.
- ``echo`` is supported: the prompt is put in front of the text (in a stream, as the
  first chunk). ``suffix`` (insertion) is refused; ``n`` and ``best_of`` must be 1.
  ``logprobs`` and ``logit_bias`` are accepted and ignored; ``logprobs`` is null.
  ``frequency_penalty`` / ``presence_penalty`` ride to OpenAI-compatible upstreams as in
  openai_chat.
- Tool calls cannot be expressed here, and cannot arise: a request from this dialect
  never offers tools. Thinking has no field either and is dropped. The canonical
  "error" finish reason is sent as "stop" (the SDK knows only stop, length and
  content_filter); reporting a failure is the http layer's job.
"""
from __future__ import annotations

from typing import Any

from gateway.canonical import (
    Finish, Message, Request, Response, StreamEvent, TextDelta, TextPart, Usage, UsageEvent,
)
from gateway.codecs.fields import (
    bad as _bad, is_int as _is_int, opt_bool as _opt_bool, opt_number as _opt_number,
    opt_positive_int as _opt_positive_int, opt_str as _opt_str, req_str as _req_str,
)
from gateway.codecs.openai_chat.request import common_options, stop_sequences
from gateway.codecs.openai_chat.response import usage_out
from gateway.errors import InvalidRequest

DEFAULT_MAX_TOKENS = 16
_FINISH_OUT = {"stop": "stop", "length": "length", "content_filter": "content_filter",
               "tool_calls": "stop", "error": "stop"}


def to_canonical_request(body: object) -> Request:
    """Decode a client's (already JSON-parsed) legacy Completions request body."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = _req_str(body, "model", "")
    prompt = _prompt(body.get("prompt"))
    if body.get("suffix") is not None:
        _bad("suffix", "is not supported: this gateway does not do insertion completions")
    for key in ("n", "best_of"):
        v = body.get(key)
        if v is not None and (not _is_int(v) or v != 1):
            _bad(key, "must be 1: only one completion per request is supported")
    _opt_bool(body, "echo")
    logprobs = body.get("logprobs")
    if logprobs is not None and not _is_int(logprobs):
        _bad("logprobs", "must be an integer")
    stream, include_usage, seed, extra = common_options(body)
    return Request(
        model=model, messages=(Message("user", (TextPart(prompt),)),),
        max_tokens=_opt_positive_int(body, "max_tokens") or DEFAULT_MAX_TOKENS,
        temperature=_opt_number(body, "temperature", 0, 2), top_p=_opt_number(body, "top_p", 0, 1),
        stop=stop_sequences(body.get("stop")), stream=stream, include_usage=include_usage,
        user=_opt_str(body, "user"), seed=seed,
        metadata={"openai_extra": extra} if extra else {},
    )


def _prompt(v: object) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        if len(v) == 1 and isinstance(v[0], str):
            return v[0]
        if v and all(_is_int(t) or isinstance(t, list) for t in v):
            _bad("prompt", "arrays of token ids are not supported; send the prompt as a string")
        if len(v) > 1:
            _bad("prompt", "holds several prompts; send one prompt per request")
    _bad("prompt", "is required and must be a string (or an array of exactly one string)")


def echo_prefix(body: dict, req: Request) -> str:
    """The text put in front of the completion: the prompt when ``echo`` is true."""
    return req.messages[0].text if body.get("echo") is True else ""


def from_canonical_response(resp: Response, *, id: str, model: str, created: int,
                            prefix: str = "") -> dict:
    """Encode the client's text_completion; ``model`` is the public id."""
    out: dict[str, Any] = {
        "id": id, "object": "text_completion", "created": created, "model": model,
        "choices": [{"text": prefix + resp.message.text, "index": 0, "logprobs": None,
                     "finish_reason": _FINISH_OUT[resp.finish_reason]}],
    }
    if resp.usage is not None:
        out["usage"] = usage_out(resp.usage)
    return out


class StreamEncoder:
    """Canonical events -> client ``text_completion`` chunk dicts.

    State: whether the echoed prompt has gone out. Text deltas become chunks, Finish
    becomes an empty-text chunk with the finish reason, and with ``include_usage`` the
    UsageEvent becomes a final ``choices: []`` chunk, as OpenAI sends it.
    """

    def __init__(self, id: str, model: str, created: int, include_usage: bool,
                 prefix: str = "") -> None:
        self.id, self.model, self.created = id, model, created
        self.include_usage = include_usage
        self._prefix_pending = prefix

    def encode(self, ev: StreamEvent) -> list[dict]:
        out: list[dict] = []
        if self._prefix_pending:
            out.append(self._chunk(self._prefix_pending))
            self._prefix_pending = ""
        if isinstance(ev, TextDelta) and ev.text:
            out.append(self._chunk(ev.text))
        elif isinstance(ev, Finish):
            out.append(self._chunk("", _FINISH_OUT[ev.reason]))
        elif isinstance(ev, UsageEvent) and self.include_usage:
            out.append(self.usage_chunk(ev.usage))
        return out

    def usage_chunk(self, usage: Usage) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model, "choices": [], "usage": usage_out(usage)}

    def _chunk(self, text: str, finish: str | None = None) -> dict:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
