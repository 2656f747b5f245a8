"""Anthropic Messages wire format <-> the canonical model, both directions.

Owns every non-streamed Messages shape: client request bodies in
(``to_canonical_request``), upstream request bodies out (``from_canonical_request``),
upstream responses in (``to_canonical_response``) and client responses out
(``from_canonical_response``). Split by concern: ``request`` decodes client requests,
``request_out`` encodes upstream ones, ``response`` holds whole responses both ways,
``stream`` the event state machines; this module is the dialect's API. Client
decoding raises ``InvalidRequest`` naming the field; upstream decoding raises
``UpstreamError`` (``UpstreamProtocolError`` for a malformed body). Pure: no I/O.

Top-level request fields fall in four groups:
- translated into the canonical Request (everything ``to_canonical_request`` reads);
- Anthropic-only options carried in ``Request.metadata`` so an Anthropic upstream gets
  them back and every other upstream ignores them: ``thinking`` ("anthropic_thinking"),
  ``output_config`` minus its ``format`` ("anthropic_output_config"), and every
  ``cache_control`` marker ("anthropic_cache_control": the top-level one, and those on
  tools, system blocks and top-level message content blocks, by position: a message
  counted from the end of the conversation, so history put in front of the client's
  messages, as session memory does, cannot move a breakpoint);
- ``REFUSED_FIELDS``: ``mcp_servers``, whose tools Anthropic would run server-side and
  no other upstream can. Server and Anthropic-defined tools in ``tools`` are carried
  as hosted tools (codecs/hosted.py): an Anthropic upstream gets them back as sent,
  the model's hosted_tools policy decides for other routes;
- everything else is dropped. ``IGNORED_FIELDS`` lists the known ones we knowingly do
  not honour; an unknown field is dropped too, because the SDK grows parameters faster
  than a gateway can refuse them and a 400 on an unknown hint breaks clients for nothing.
``null`` for an optional field means "not given".

Content rules. A ``document`` block with a plain-text source (``text``, or ``content``
made of text) becomes a TextPart holding the document's text (title, context and
citation settings are dropped); PDF, URL and file sources are refused, because the
canonical model has no home for a document and other upstreams could not read one. A
``redacted_thinking`` block travels as a ThinkingPart with empty text whose signature is
``REDACTED_PREFIX`` + its data, so an Anthropic upstream gets it back byte for byte.
Image sources ``base64`` and ``url`` are supported; ``file`` is refused.

Towards an Anthropic upstream, where the canonical value has no Anthropic field:
system messages ahead of the conversation form ``system`` and later ones (Anthropic
accepts ``role: "system"`` mid-conversation, and the decoder takes them anywhere) stay
in place, or join ``system`` in order with ``system_in_place=False``;
consecutive tool messages merge into one user turn of tool_result blocks; thinking
without a signature (another vendor's reasoning, which Anthropic would reject) and
assistant images are dropped; ``temperature`` is clamped to Anthropic's 0..1; ``seed``
and message names are dropped; a missing ``max_tokens`` becomes ``DEFAULT_MAX_TOKENS`` because Anthropic
requires one; tool arguments that are not a JSON object become ``{}``. JSON mode:
``json_schema`` goes out as ``output_config.format`` (Anthropic's structured outputs);
``json_object`` has no Anthropic field, so a written instruction (``JSON_INSTRUCTION``)
is appended as the last system block.

Responses: stop reasons end_turn, stop_sequence and pause_turn mean "stop" (as does a
reason newer than this codec: the generation finished, and failing it would bill the
client for an error), max_tokens and model_context_window_exceeded "length", tool_use
"tool_calls", refusal "content_filter". Out, "stop" is always end_turn with a null
stop_sequence, since the canonical model does not carry which sequence matched. Upstream
blocks of types we do not know (server tool blocks) are skipped.

Usage: Anthropic's ``input_tokens`` excludes cache reads and writes; canonical
``input_tokens`` is the whole prompt, so both are added in and cache reads become
``cached_input_tokens``. Out, cached tokens are reported as ``cache_read_input_tokens``
and the rest as ``input_tokens``; cache writes are not tracked canonically, so
``cache_creation_input_tokens`` is always 0 on the way out.
"""
from gateway.codecs.anthropic.request import (
    DEFAULT_MAX_TOKENS, IGNORED_FIELDS, JSON_INSTRUCTION, MAX_MESSAGES, MAX_TOOLS, REDACTED_PREFIX,
    REFUSED_FIELDS, to_canonical_request,
)
from gateway.codecs.anthropic.request_out import from_canonical_request
from gateway.codecs.anthropic.response import (
    from_canonical_response, raise_if_error, to_canonical_response,
)
from gateway.codecs.anthropic.stream import Frame, StreamDecoder, StreamEncoder

__all__ = [
    "DEFAULT_MAX_TOKENS", "Frame", "IGNORED_FIELDS", "JSON_INSTRUCTION", "MAX_MESSAGES", "MAX_TOOLS",
    "REDACTED_PREFIX", "REFUSED_FIELDS", "StreamDecoder", "StreamEncoder", "from_canonical_request",
    "from_canonical_response", "raise_if_error", "to_canonical_request", "to_canonical_response",
]
