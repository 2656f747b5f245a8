"""Kind "simulator" for the inference operations: the simulator's answers in-process,
with the same fault directives (inside the input text) and latency as its chat."""
from __future__ import annotations

from typing import AsyncIterator

import trio

from gateway import canonical as c
from gateway import canonical_ops as o
from gateway import errors, tokenizer
from gateway.codecs import rerank
from gateway.config import ProviderConfig
from gateway.providers.inference import local_count
from gateway.simulator import sim_audio, sim_inference
from gateway.simulator.faults import fault_error, parse_fault
from gateway.simulator.sim_routes import embed, transcript

_CHUNK = 16384


async def _fault(*texts: str) -> None:
    for t in texts:
        fault = parse_fault(c.Request(model="", messages=(c.Message("user", (c.TextPart(t),)),)))
        if fault.delay > 0:
            await trio.sleep(fault.delay)
        err = fault_error(fault)
        if err is not None:
            raise err
    await trio.lowlevel.checkpoint()


class SimulatorInference:
    fetches_urls = False
    speech_formats = ("wav", "pcm", "mp3")

    def __init__(self, config: ProviderConfig, chat=None) -> None:
        self.config = config

    async def aclose(self) -> None:
        return None

    async def embed(self, req: o.EmbedRequest, model: str) -> o.EmbedResult:
        texts = tuple(x if isinstance(x, str) else tokenizer.decode(list(x)) for x in req.inputs)
        await _fault(*texts)
        return embed(texts, req.dimensions)

    async def rerank(self, req: o.RerankRequest, model: str) -> o.RerankResult:
        await _fault(req.query)
        return o.RerankResult(hits=sim_inference.rerank(req.query, req.documents),
                              search_units=rerank.search_units(len(req.documents)))

    async def count_tokens(self, req: c.Request, model: str) -> o.CountResult:
        return o.CountResult(input_tokens=local_count(req).input_tokens, exact=True)

    async def speech(self, req: o.SpeechRequest, model: str) -> o.SpeechResult:
        await _fault(req.input)
        data = sim_audio.speech(req.input, req.format, req.speed)
        if data is None:
            raise errors.InvalidRequest(f"response_format: the simulator makes wav, pcm or mp3, not {req.format}",
                                        field="response_format")
        return o.SpeechResult(audio=data, format=req.format)

    async def speech_stream(self, req: o.SpeechRequest, model: str) -> AsyncIterator[bytes]:
        res = await self.speech(req, model)
        for i in range(0, len(res.audio), _CHUNK):
            await trio.lowlevel.checkpoint()
            yield res.audio[i:i + _CHUNK]

    async def transcribe(self, req: o.TranscriptionRequest, model: str, duration: float) -> o.TranscriptionResult:
        text = sim_audio.transcribe(req.audio)
        await _fault(text)
        res = transcript(text, req.audio)
        return o.TranscriptionResult(text=res.text, duration=duration, segments=res.segments, words=res.words)

    async def search(self, req: o.SearchRequest, model: str) -> o.SearchResult:
        from gateway.codecs import search
        await _fault(*req.queries)
        return search.merge([search.searxng_result({"results": sim_inference.search(q, req.max_results, req.domains)}, req)
                             for q in req.queries], req.max_results * len(req.queries))

    async def ocr(self, req: o.OcrRequest, model: str) -> o.OcrResult:
        assert req.data is not None, "the operation fetches URLs first"
        pages = sim_inference.ocr_pages(req.data, req.pages)
        await _fault(*(p.markdown for p in pages))
        return o.OcrResult(pages=tuple(pages), doc_size_bytes=len(req.data))
