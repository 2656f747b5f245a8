"""Every inference provider kind against the HTTP simulator over real sockets: the
upstream wire formats both ways, the simulator's answers, and failures mapped to ours."""
from __future__ import annotations

import io
import math

import httpx
import mutagen
import pytest

from gateway import canonical as c
from gateway import canonical_ops as o
from gateway import errors
from gateway.config import ProviderConfig
from gateway.providers.inference import inference_provider
from tests.inference.documents import page_png, pdf


def _pc(kind: str, url: str) -> ProviderConfig:
    return ProviderConfig(id=f"t-{kind}", kind=kind, base_url=url, api_key_env="PATH")


def _cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.mark.parametrize("kind,suffix", [("openai", "/v1"), ("gemini", ""), ("simulator", "")])
async def test_embeddings_are_stable_and_share_words(sim_url, kind, suffix):
    p = inference_provider(_pc(kind, sim_url + suffix), "embeddings")
    req = o.EmbedRequest(model="e", inputs=("the red fox jumps", "a red fox sleeps", "stock market report"))
    res = await p.embed(req, "sim-embed")
    again = await p.embed(req, "sim-embed")
    assert res.vectors == again.vectors and len(res.vectors[0]) == 256 and res.input_tokens > 0
    assert _cos(res.vectors[0], res.vectors[1]) > _cos(res.vectors[0], res.vectors[2])
    small = await p.embed(o.EmbedRequest(model="e", inputs=("x",), dimensions=16), "sim-embed")
    assert len(small.vectors[0]) == 16
    await p.aclose()


@pytest.mark.parametrize("kind", ["cohere", "simulator"])
async def test_rerank_by_overlap(sim_url, kind):
    p = inference_provider(_pc(kind, sim_url), "rerank")
    res = await p.rerank(o.RerankRequest(model="r", query="solar panel cost",
                                         documents=("weather today", "solar panel cost per watt", "panel")), "rr")
    assert [h.index for h in res.hits] == [1, 2, 0] and res.search_units == 1


@pytest.mark.parametrize("kind,suffix,fmt", [("openai", "/v1", "wav"), ("openai", "/v1", "mp3"),
                                             ("gemini", "", "wav"), ("simulator", "", "mp3")])
async def test_speech_round_trips_through_transcription(sim_url, kind, suffix, fmt):
    speak = inference_provider(_pc(kind, sim_url + suffix), "speech")
    text = "Prism turns this sentence into sound and back again."
    res = await speak.speech(o.SpeechRequest(model="t", input=text, format=fmt), "sim-tts")
    length = mutagen.File(io.BytesIO(res.audio)).info.length
    assert abs(length - 0.4 * 9) < 0.05
    hear = inference_provider(_pc(kind, sim_url + suffix), "transcription")
    req = o.TranscriptionRequest(model="w", audio=res.audio, filename=f"a.{fmt}", media_type=f"audio/{fmt}",
                                 timestamp_granularities=("word", "segment"))
    out = await hear.transcribe(req, "sim-whisper", length)
    assert out.text == text and out.duration == length


async def test_speech_stream_chunks(sim_url):
    p = inference_provider(_pc("openai", sim_url + "/v1"), "speech")
    chunks = [ch async for ch in p.speech_stream(o.SpeechRequest(model="t", input="one two " * 30,
                                                                  format="wav"), "sim-tts")]
    assert len(chunks) > 1 and b"".join(chunks)[:4] == b"RIFF"


@pytest.mark.parametrize("kind", ["searxng", "tavily", "simulator"])
async def test_search_results_follow_query(sim_url, kind):
    p = inference_provider(_pc(kind, sim_url), "search")
    res = await p.search(o.SearchRequest(queries=("quantum computing news",), max_results=3), "s")
    assert len(res.hits) == 3 and all("quantum" in h.snippet for h in res.hits)
    only = await p.search(o.SearchRequest(queries=("rust",), max_results=2, domains=("docs.rs",)), "s")
    assert only.hits and all("docs.rs" in h.url for h in only.hits)


@pytest.mark.parametrize("kind", ["mistral", "simulator"])
async def test_ocr_reads_text_layer_and_scans(sim_url, kind):
    p = inference_provider(_pc(kind, sim_url), "ocr")
    doc = pdf([("Page one has a text layer", False), ("Page two is only a scan", True)])
    res = await p.ocr(o.OcrRequest(model="o", kind="document_url", data=doc, media_type="application/pdf"), "ocr")
    assert [pg.markdown for pg in res.pages] == ["Page one has a text layer", "Page two is only a scan"]
    img = await p.ocr(o.OcrRequest(model="o", kind="image_url", data=page_png("A receipt: 3 pears"),
                                   media_type="image/png"), "ocr")
    assert img.pages[0].markdown == "A receipt: 3 pears"


@pytest.mark.parametrize("kind,suffix", [("openai", "/v1"), ("anthropic", ""), ("gemini", "")])
async def test_ocr_through_a_vision_chat_model(sim_url, kind, suffix):
    from gateway.providers import build_provider
    pc = _pc(kind, sim_url + suffix)
    p = inference_provider(pc, "ocr", chat=build_provider(pc))
    doc = pdf([("Scanned invoice 77", True)])
    res = await p.ocr(o.OcrRequest(model="o", kind="document_url", data=doc), "sim-vision")
    assert res.pages[0].markdown == "Scanned invoice 77"


@pytest.mark.parametrize("kind", ["gemini", "anthropic"])
async def test_exact_counters(sim_url, kind):
    p = inference_provider(_pc(kind, sim_url), "count_tokens")
    req = c.Request(model="m", messages=(c.Message("user", (c.TextPart("count these words please"),)),))
    res = await p.count_tokens(req, "sim-mini")
    assert res.exact and res.input_tokens > 0


async def test_failures_map_to_our_errors(sim_url):
    p = inference_provider(_pc("openai", sim_url + "/v1"), "embeddings")
    with pytest.raises(errors.UpstreamError):
        await p.embed(o.EmbedRequest(model="e", inputs=("boom [[sim status=503]]",)), "e")
    with pytest.raises(errors.RateLimited):
        await p.embed(o.EmbedRequest(model="e", inputs=("slow down [[sim status=429]]",)), "e")
    dead = inference_provider(_pc("cohere", sim_url + "/_sim/fail/500"), "rerank")
    with pytest.raises(errors.UpstreamError):
        await dead.rerank(o.RerankRequest(model="r", query="q", documents=("d",)), "rr")
    stats = httpx.get(sim_url + "/_sim/stats").json()["inference"]
    assert stats["openai:embeddings"] >= 2
