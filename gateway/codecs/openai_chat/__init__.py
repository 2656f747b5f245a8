"""OpenAI Chat Completions wire format <-> the canonical model, both directions.

Split by concern: ``request`` decodes client requests, ``request_out`` encodes
upstream requests, ``response`` holds whole responses both ways and the shape helpers
streams share, ``stream`` the chunk state machines. This module is the dialect's API.

Owns every Chat Completions shape: client request bodies in (``to_canonical_request``),
upstream request bodies out (``from_canonical_request``), upstream responses and stream
chunks in (``to_canonical_response``, ``StreamDecoder``), client responses and chunks
out (``from_canonical_response``, ``StreamEncoder``). Client-side decoding raises
``InvalidRequest`` naming the field; upstream-side decoding raises ``UpstreamError``.
Pure: no I/O, and SSE framing plus the ``data: [DONE]`` line belong to other layers.

Top-level request fields fall in four groups:
- translated into the canonical Request (everything ``to_canonical_request`` reads);
- ``frequency_penalty`` / ``presence_penalty``: validated (-2..2) and carried in
  ``Request.metadata["openai_extra"]`` so an OpenAI-compatible upstream still honours
  them; other dialects ignore that key;
- ``REFUSED_FIELDS``: the legacy ``functions`` / ``function_call`` pair. Translating them
  would hand the client ``tool_calls`` where it waits for ``function_call``, so the
  client gets a clear 400 pointing at ``tools`` instead;
- everything else is dropped. ``IGNORED_FIELDS`` lists the OpenAI parameters we know
  and knowingly do not honour (logprobs, logit_bias, store, ...), so callers can log
  or report them; a field in neither list is dropped the same way, because new SDK
  releases add parameters faster than we can refuse them and a gateway that 400s on
  an unknown hint breaks clients for nothing.

``null`` for an optional field means "not given", since many clients serialise unset
options that way.

Where the wire cannot carry a canonical value it is dropped, not refused: upstream,
ThinkingPart and assistant images (no Chat Completions field), images inside tool
results (tool messages take text only), ToolResultPart.is_error, Request.top_k (OpenAI
rejects it); to clients, a thinking signature, Usage.estimated, and the "error" finish
reason, sent as "stop". Thinking travels as ``reasoning_content``, the extension
DeepSeek and vLLM use. Tool.strict from clients has no canonical home either.
"""
from gateway.codecs.openai_chat.request import (
    IGNORED_FIELDS, MAX_MESSAGES, MAX_TOOLS, REFUSED_FIELDS, common_options, to_canonical_request,
)
from gateway.codecs.openai_chat.request_out import from_canonical_request
from gateway.codecs.openai_chat.response import from_canonical_response, to_canonical_response
from gateway.codecs.openai_chat.stream import StreamDecoder, StreamEncoder

__all__ = [
    "IGNORED_FIELDS", "MAX_MESSAGES", "MAX_TOOLS", "REFUSED_FIELDS", "StreamDecoder",
    "StreamEncoder", "common_options", "from_canonical_request", "from_canonical_response",
    "to_canonical_request", "to_canonical_response",
]
