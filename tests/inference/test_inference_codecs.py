"""The inference codecs, both sides, and multipart, as plain synchronous tests."""
from __future__ import annotations

import base64
import json
import struct

import pytest

from gateway import canonical_ops as o
from gateway import errors
from gateway.codecs import audio, embeddings, multipart, ocr, rerank, search


def test_openai_embeddings_inputs_and_base64():
    req = embeddings.openai_to_canonical({"model": "e", "input": ["a b", [1, 2, 3]], "dimensions": 8})
    assert req.inputs == ("a b", (1, 2, 3)) and req.dimensions == 8
    assert embeddings.openai_to_canonical({"model": "e", "input": [5, 6]}).inputs == ((5, 6),)
    res = o.EmbedResult(vectors=((0.5, -0.25),), input_tokens=3)
    body = embeddings.openai_from_canonical(res, "e", "base64")
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -0.25)
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert embeddings.openai_upstream_result(body, 1).vectors == ((0.5, -0.25),)


@pytest.mark.parametrize("body", [
    {"model": "e"}, {"model": "e", "input": ""}, {"model": "e", "input": []},
    {"model": "e", "input": ["ok", ""]}, {"model": "e", "input": "x", "encoding_format": "hex"},
    {"model": "e", "input": "x", "dimensions": 0}, {"input": "x"}, [],
])
def test_openai_embeddings_refusals(body):
    with pytest.raises(errors.InvalidRequest):
        embeddings.openai_to_canonical(body)


def test_gemini_embeddings_both_ways():
    one = embeddings.gemini_to_canonical("m", {"content": {"parts": [{"text": "hi"}]},
                                               "outputDimensionality": 4}, batch=False)
    assert one.inputs == ("hi",) and one.dimensions == 4
    batch = embeddings.gemini_to_canonical("m", {"requests": [
        {"content": {"parts": [{"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}}]}, batch=True)
    assert batch.inputs == ("a", "b")
    up = embeddings.gemini_upstream_body(batch, "models/m", batch.inputs)
    assert up["requests"][1] == {"model": "models/m", "content": {"parts": [{"text": "b"}]}}
    res = embeddings.gemini_upstream_result({"embeddings": [{"values": [1, 0]}, {"values": [0, 1]}]}, 2, 2)
    assert embeddings.gemini_from_canonical(res, True) == {"embeddings": [{"values": [1.0, 0.0]},
                                                                         {"values": [0.0, 1.0]}]}
    with pytest.raises(errors.UpstreamProtocolError):
        embeddings.gemini_upstream_result({"embeddings": []}, 2, 0)


def test_rerank_documents_and_echo():
    req = rerank.to_canonical({"model": "r", "query": "q", "documents": ["x", {"text": "y"}, {"a": 1}],
                               "top_n": 2, "return_documents": True})
    assert req.documents == ("x", "y", "a: 1")
    res = rerank.upstream_result({"results": [{"index": 1, "relevance_score": 0.2},
                                              {"index": 2, "relevance_score": 0.9},
                                              {"index": 0, "relevance_score": 0.1}]}, 3)
    body = rerank.from_canonical(res, req, "id1")
    assert [r["index"] for r in body["results"]] == [2, 1]
    assert body["results"][0]["document"] == {"a": 1}
    assert body["meta"]["billed_units"]["search_units"] == 1
    assert rerank.search_units(100) == 1 and rerank.search_units(101) == 2
    with pytest.raises(errors.InvalidRequest) as e:
        rerank.to_canonical({"model": "r", "query": "q", "documents": ["d"] * 5}, max_documents=4)
    assert e.value.code == "too_many_documents"


def _form(fields, files=()):
    body, ctype = multipart.encode(fields, list(files))
    return multipart.parse(ctype, body, 1 << 20)


def test_multipart_round_trip_and_transcription_form():
    form = _form([("model", "w"), ("response_format", "srt"), ("timestamp_granularities[]", "word"),
                  ("timestamp_granularities[]", "segment")], [("file", "a.wav", "audio/wav", b"RIFFxx")])
    req = audio.transcription_to_canonical(form, translate=False)
    assert req.audio == b"RIFFxx" and req.filename == "a.wav"
    assert req.timestamp_granularities == ("word", "segment") and req.response_format == "srt"
    with pytest.raises(errors.InvalidRequest):
        audio.transcription_to_canonical(_form([("model", "w")]), translate=False)
    with pytest.raises(errors.BodyTooLarge):
        body, ctype = multipart.encode([], [("file", "a", "audio/wav", b"x" * 100)])
        multipart.parse(ctype, body, 50)
    for bad_ctype in ("application/json", "multipart/form-data"):
        with pytest.raises(errors.InvalidRequest):
            multipart.parse(bad_ctype, b"--x--", 100)


def test_transcript_formats():
    res = o.TranscriptionResult(text="Hello there. Bye.", duration=3.5,
                                segments=(o.Segment(0, 2, " Hello there."), o.Segment(2, 3.5, " Bye.")),
                                words=(o.Word(0, 1, "Hello"),))
    base = o.TranscriptionRequest(model="w", audio=b"x", filename="a.wav",
                                  timestamp_granularities=("word", "segment"))
    def render(fmt):
        from dataclasses import replace
        return audio.transcript_body(res, replace(base, response_format=fmt))[0].decode()
    assert render("text") == "Hello there. Bye.\n"
    assert "00:00:02,000 --> 00:00:03,500\nBye." in render("srt")
    assert render("vtt").startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000")
    verbose = json.loads(render("verbose_json"))
    assert verbose["duration"] == 3.5 and len(verbose["segments"]) == 2 and verbose["words"][0]["word"] == "Hello"
    assert json.loads(render("json"))["text"] == "Hello there. Bye."


def test_speech_request_checks():
    assert audio.speech_to_canonical({"model": "t", "input": "hi", "response_format": "wav"}).format == "wav"
    for body in ({"model": "t", "input": ""}, {"model": "t", "input": "x", "speed": 9},
                 {"model": "t", "input": "x", "response_format": "ogg"}, {"model": "t", "input": "x" * 5000}):
        with pytest.raises(errors.InvalidRequest):
            audio.speech_to_canonical(body)


def test_search_and_domain_filter():
    req = search.to_canonical({"query": ["a", "b"], "max_results": 3, "search_domain_filter": ["x.org", "-y.com"]})
    assert req.queries == ("a", "b")
    res = search.searxng_result({"results": [{"url": "https://x.org/1", "title": "t", "content": "c"},
                                             {"url": "https://y.com/2"}, {"url": "https://z.net/3"}]}, req)
    assert [h.url for h in res.hits] == ["https://x.org/1"]
    assert search.tavily_body(req, "a") == {"query": "a", "max_results": 3, "include_domains": ["x.org"],
                                            "exclude_domains": ["y.com"]}
    for body in ({}, {"query": ""}, {"query": "x", "max_results": 50}, {"query": "x", "country": "usa"}):
        with pytest.raises(errors.InvalidRequest):
            search.to_canonical(body)


def test_ocr_documents():
    data = base64.b64encode(b"%PDF-1.4 tiny").decode()
    req = ocr.to_canonical({"model": "o", "document": {"type": "document_url",
                                                       "document_url": f"data:application/pdf;base64,{data}"},
                            "pages": [2, 0, 2]}, 1 << 20)
    assert req.data == b"%PDF-1.4 tiny" and req.pages == (0, 2) and req.media_type == "application/pdf"
    url = ocr.to_canonical({"model": "o", "document": {"type": "image_url",
                                                       "image_url": {"url": "https://e.com/a.png"}}}, 10)
    assert url.url == "https://e.com/a.png" and url.data is None
    for body in ({"model": "o"}, {"model": "o", "document": {"type": "document_url", "document_url": "ftp://x"}},
                 {"model": "o", "document": {"type": "document_url", "document_url": "data:;base64,@@"}}):
        with pytest.raises(errors.InvalidRequest):
            ocr.to_canonical(body, 1 << 20)
    res = o.OcrResult(pages=(o.OcrPage(index=0, markdown="# Hi", width=10, height=20),))
    body = ocr.from_canonical(res, "o")
    assert body["usage_info"]["pages_processed"] == 1 and ocr.upstream_result(body).pages == res.pages
