"""Gemini generateContent wire format <-> the canonical model, both directions.

Owns every generateContent shape: client request bodies in (``to_canonical_request``;
the model and the stream flag come from the URL), upstream request bodies out
(``from_canonical_request``; the provider puts the model in the URL), upstream
responses in (``to_canonical_response``), client responses out
(``from_canonical_response``), and the route check ``check_route``. Split by concern:
``request`` decodes client requests, ``request_out`` encodes upstream ones and judges
routes, ``response`` holds whole responses both ways, ``stream`` the chunk state
machines, ``parts`` the part encoding all of them share; this module is the API. Client-side decoding raises ``InvalidRequest`` (or one of its named
subclasses) naming the field; upstream-side decoding raises ``UpstreamError``. Pure.

Field names: proto JSON accepts both lowerCamelCase and the proto's snake_case
(Google's own curl examples use ``system_instruction`` and ``inline_data``), so both are
read; giving one field under both names is refused. ``null`` means "not given".

Request fields fall in five groups:
- translated: contents, systemInstruction, tools[].functionDeclarations,
  toolConfig.functionCallingConfig, and generationConfig's maxOutputTokens,
  temperature, topP, topK, stopSequences, seed, candidateCount (1 only),
  responseMimeType, responseSchema / responseJsonSchema / _responseJsonSchema;
- carried in ``Request.metadata`` for the upstreams that understand them:
  ``gemini_native`` (built-in tools such as googleSearch, codeExecution, urlContext:
  {feature: config}; ``check_route`` / ``usable_routes`` refuse them with
  unsupported_gemini_feature on routes that are not Gemini, before any upstream call,
  and keep failover off such routes), ``gemini_thinking``
  (generationConfig.thinkingConfig), ``gemini_safety`` (safetySettings; other upstreams
  have their own filters, so dropping them there loosens nothing we promised), and
  ``openai_extra`` (presencePenalty / frequencyPenalty, which OpenAI-compatible and
  Gemini upstreams both honour); the gateway's own ``response_modalities`` hint (see
  canonical.py) goes out as generationConfig.responseModalities, and inlineData image
  parts of an upstream answer come back as ImageParts of the assistant message;
- refused: ``stream: true`` on generateContent (call streamGenerateContent), cachedContent
  (a cache lives in the caller's own Google project, which our upstream key cannot
  read), candidateCount above 1, responseModalities other than TEXT, inline or file data
  that is not an image and toolCall / toolResponse parts (all unsupported_gemini_feature),
  bytes fields (inlineData.data, thoughtSignature) that are not base64, as Gemini
  refuses them too, and responseMimeType other than application/json or text/plain
  (unsupported_response_format);
- checked: response schemas, by codecs/schema.py (invalid_response_format_schema);
- dropped: everything else. ``IGNORED_FIELDS`` lists the Gemini fields we know and
  knowingly leave out (labels, logprobs, speechConfig, ...); unknown ones go the same
  way, because SDK releases add fields faster than a gateway can refuse them.

Function-call ids. Gemini pairs a functionResponse with its functionCall by name (and by
``id`` when the call carried one); canonical pairs by id. Decoding a request, a call
without an id gets ``call_<n>`` (n counts calls across the request, skipping ids the
client used), and a response without an id answers the oldest unanswered call of the
same name; one that answers nothing gets a fresh id and the upstream judges it. Upstream
responses number their id-less calls ``call_<n>`` in order. Ids of that synthetic form
are never written to Gemini (client or upstream), which pairs by name anyway; any other
id is passed through.

Thought signatures: a ``thoughtSignature`` on a thought part rides on its ThinkingPart;
one on any other part becomes an empty ThinkingPart carrying only the signature, placed
just before that part, and is put back on the following part when encoding. Gemini 3
refuses function-call history whose signatures were lost.

Lossy by design: system messages after the first turn join systemInstruction (Gemini has
no system role in contents); executableCode / codeExecutionResult parts become text;
images inside tool results follow the functionResponse as inlineData parts; tool-call
arguments that are not a JSON object travel as ``{"_raw": <text>}`` (Gemini args are an
object); the "error" finish reason goes out as OTHER and "tool_calls" as STOP, which is
what Gemini itself says beside function calls. Signatures and inline image data that
are not base64 (they can only come from another provider) are left out when writing
Gemini, because google-genai types them as bytes and would reject the whole body.
"""
from gateway.codecs.gemini.request import IGNORED_FIELDS, to_canonical_request
from gateway.codecs.gemini.request_out import check_route, from_canonical_request, usable_routes
from gateway.codecs.gemini.response import from_canonical_response, to_canonical_response
from gateway.codecs.gemini.stream import StreamDecoder, StreamEncoder

__all__ = [
    "IGNORED_FIELDS", "StreamDecoder", "StreamEncoder", "check_route", "from_canonical_request",
    "from_canonical_response", "to_canonical_request", "to_canonical_response", "usable_routes",
]
