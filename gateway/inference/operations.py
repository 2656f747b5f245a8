"""The inference operations as the engine serves them: what each holds, how it is
priced, and the provider method it calls on one route.

    operation      price on the model (prism.toml)   held / billed units
    embeddings     input_usd_per_mtok                input tokens (upstream's count, else ours)
    rerank         search_usd                        searches: query + up to 100 documents
                   (or input_usd_per_mtok)           (or tokens: query per document + documents)
    speech         speech_usd_per_mchar              input characters
    transcription  audio_usd_per_minute              milliseconds of audio, read from the file
    search         request_usd                       one per request
    ocr            page_usd                          pages processed

Every call value carries the InferenceClients, so the provider method finds the client
of whichever route the dispatcher is trying; usable_routes narrows a model's routes to
those that can serve the operation (and says why when none can) before anything is
held. Token counting is free and is not an operation: see http/inference_routes.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, AsyncIterator

from gateway import canonical as c
from gateway import canonical_ops as o
from gateway import errors
from gateway.config import RouteConfig
from gateway.engine.operations import Operation, Pricing, Upstream
from gateway.inference.clients import InferenceClients


@dataclass
class Call:
    """One operation's request on its way through the engine. ``units`` is the worst
    case the route measured before admission (tokens, characters, ms, pages)."""
    op: str
    req: Any
    clients: InferenceClients
    units: int = 1
    duration: float = 0.0     # transcription: seconds of audio, measured from the file

    def client(self, route: RouteConfig) -> Any:
        client = self.clients.get(route.provider, self.op)
        if client is None:   # usable_routes keeps these out; a reload may race it
            raise errors.UpstreamError(f"route {route.provider} cannot serve {self.op}")
        return client


@dataclass(frozen=True)
class Done:
    """A result and the units it is billed for."""
    value: Any
    units: int


@dataclass
class SpeechStream:
    first: bytes
    rest: AsyncIterator[bytes]


def usable_routes(clients: InferenceClients, entry: Any, routes: tuple[RouteConfig, ...],
                  op: str, capability: str, *, speech_format: str | None = None) -> tuple[RouteConfig, ...]:
    model = entry.model
    if capability not in model.capabilities:
        raise errors.InvalidRequest(
            f"The model {entry.public_id!r} does not serve {op} (it lacks the {capability!r} "
            "capability)", field="model", code=f"{capability}_not_supported")
    usable = tuple(r for r in routes if clients.get(r.provider, op) is not None)
    if speech_format is not None:
        usable = tuple(r for r in usable
                       if speech_format in getattr(clients.get(r.provider, op), "speech_formats", o.SPEECH_FORMATS))
        if not usable:
            raise errors.InvalidRequest(
                f"response_format: no route of {entry.public_id!r} can make {speech_format} audio",
                field="response_format", code="unsupported_response_format")
    if not usable:
        raise errors.InvalidRequest(
            f"No route of {entry.public_id!r} can serve {op}: its upstream kinds have no {op} API",
            field="model", code=f"unsupported_{capability}_route")
    return usable


async def _embed(up: Upstream, call: Call, route: RouteConfig) -> Done:
    res: o.EmbedResult = await call.client(route).embed(call.req, route.model)
    if len(res.vectors) != len(call.req.inputs):
        raise errors.UpstreamProtocolError(f"upstream {route.provider} returned {len(res.vectors)} "
                                           f"vectors for {len(call.req.inputs)} inputs")
    if call.req.dimensions and any(len(v) != call.req.dimensions for v in res.vectors):
        raise errors.UpstreamProtocolError(f"upstream {route.provider} ignored dimensions")
    return Done(res, res.input_tokens or call.units)


async def _rerank(up: Upstream, call: Call, route: RouteConfig) -> Done:
    res: o.RerankResult = await call.client(route).rerank(call.req, route.model)
    # Bill what we held (Cohere's own rule); an upstream that bills more is its business.
    return Done(res, call.units)


async def _speech(up: Upstream, call: Call, route: RouteConfig) -> Done:
    res: o.SpeechResult = await call.client(route).speech(call.req, route.model)
    if not res.audio:
        raise errors.UpstreamProtocolError(f"upstream {route.provider} returned no audio")
    return Done(res, call.units)


async def _speech_stream(up: Upstream, call: Call, route: RouteConfig) -> Done:
    """Open the upstream's audio and wait for its first bytes, so a route that fails
    before any audio still fails over; the rest flows to the client afterwards."""
    client = call.client(route)
    if not hasattr(client, "speech_stream"):
        res = await client.speech(call.req, route.model)
        return Done(SpeechStream(res.audio, _nothing()), call.units)
    chunks = client.speech_stream(call.req, route.model)
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        raise errors.UpstreamProtocolError(f"upstream {route.provider} returned no audio") from None
    except BaseException:
        await chunks.aclose()
        raise
    return Done(SpeechStream(first, chunks), call.units)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


async def _transcribe(up: Upstream, call: Call, route: RouteConfig) -> Done:
    res = await call.client(route).transcribe(call.req, route.model, call.duration)
    return Done(dataclasses.replace(res, duration=call.duration), call.units)


async def _search(up: Upstream, call: Call, route: RouteConfig) -> Done:
    return Done(await call.client(route).search(call.req, route.model), 1)


async def _ocr(up: Upstream, call: Call, route: RouteConfig) -> Done:
    res: o.OcrResult = await call.client(route).ocr(call.req, route.model)
    if not res.pages:
        raise errors.UpstreamProtocolError(f"upstream {route.provider} returned no pages")
    return Done(res, len(res.pages))


def _units(res: Done) -> int:
    return res.units


EMBEDDINGS = Operation(kind="embeddings", capability="embeddings",
                       pricing=Pricing.units("input_usd_per_mtok", "token", per=1_000_000),
                       call=_embed, hold_units=lambda call: call.units, units_of=_units,
                       usage_of=lambda res: c.Usage(input_tokens=res.units),
                       noun="compute embeddings")
RERANK = Operation(kind="rerank", capability="rerank", pricing=Pricing.units("search_usd", "search"),
                   call=_rerank, hold_units=lambda call: call.units, units_of=_units, noun="rerank")
# A rerank model priced per token instead (no search_usd): the query counted once per
# document plus each document, as Cohere and Jina count them.
RERANK_TOKENS = dataclasses.replace(
    RERANK, pricing=Pricing.units("input_usd_per_mtok", "token", per=1_000_000),
    usage_of=lambda res: c.Usage(input_tokens=res.units))
SPEECH = Operation(kind="speech", capability="speech",
                   pricing=Pricing.units("speech_usd_per_mchar", "character", per=1_000_000),
                   call=_speech, hold_units=lambda call: call.units, units_of=_units,
                   noun="synthesize speech")
SPEECH_STREAM = dataclasses.replace(SPEECH, call=_speech_stream)
TRANSCRIPTION = Operation(kind="transcription", capability="transcription",
                          pricing=Pricing.units("audio_usd_per_minute", "ms", per=60_000),
                          call=_transcribe, hold_units=lambda call: call.units, units_of=_units,
                          noun="transcribe audio")
SEARCH = Operation(kind="search", capability="search", pricing=Pricing.per_request("request_usd"),
                   call=_search, units_of=_units, noun="search the web")
OCR = Operation(kind="ocr", capability="ocr", pricing=Pricing.units("page_usd", "page"),
                call=_ocr, hold_units=lambda call: call.units, units_of=_units, noun="read documents")
