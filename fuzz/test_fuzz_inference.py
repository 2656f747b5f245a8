"""Fuzz the inference decoders: embeddings (OpenAI, Gemini), rerank, speech,
multipart and transcription forms, search, OCR, and the readers of uploads (audio
length, PDFs, PNG pages). Only outcomes: a value, or our own client error."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway import canonical_ops as o
from gateway import errors
from gateway.codecs import audio, embeddings, multipart, ocr, rerank, search
from gateway.documents import probe
from gateway.documents.pixels import decode_png
from gateway.simulator import sim_audio, sim_ocr

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 3000) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)


def bodies(*names: str):
    return st.one_of(json_values, st.dictionaries(st.sampled_from(names + ("other",)), json_values, max_size=8))


def _client_error(fn, *args):
    try:
        return fn(*args)
    except errors.ClientError as exc:
        assert 400 <= exc.status < 500
        return None


@settings(max_examples=300, deadline=None)
@given(bodies("model", "input", "encoding_format", "dimensions", "user"))
def test_openai_embeddings(body):
    req = _client_error(embeddings.openai_to_canonical, body)
    assert req is None or isinstance(req, o.EmbedRequest)


@settings(max_examples=300, deadline=None)
@given(bodies("content", "requests", "outputDimensionality", "taskType"), st.booleans())
def test_gemini_embeddings(body, batch):
    req = _client_error(embeddings.gemini_to_canonical, "m", body, batch)
    assert req is None or len(req.inputs) >= 1


@settings(max_examples=300, deadline=None)
@given(bodies("model", "query", "documents", "top_n", "return_documents", "max_tokens_per_doc"))
def test_rerank(body):
    req = _client_error(rerank.to_canonical, body)
    if req is not None:
        assert len(req.documents) == len(req.originals) >= 1


@settings(max_examples=300, deadline=None)
@given(bodies("model", "input", "voice", "response_format", "speed", "instructions", "stream_format"))
def test_speech(body):
    _client_error(audio.speech_to_canonical, body)


@settings(max_examples=300, deadline=None)
@given(bodies("query", "max_results", "search_domain_filter", "country", "model"))
def test_search(body):
    _client_error(search.to_canonical, body)


@settings(max_examples=300, deadline=None)
@given(bodies("model", "document", "pages", "include_image_base64"))
def test_ocr(body):
    _client_error(ocr.to_canonical, body, 1 << 20)


parts = st.lists(st.tuples(st.sampled_from(["file", "model", "response_format", "stream", "language",
                                            "timestamp_granularities[]", "temperature", "x"]),
                           st.binary(max_size=40), st.booleans()), max_size=6)


@settings(max_examples=400, deadline=None)
@given(parts, st.booleans())
def test_multipart_forms(items, translate):
    """Well-formed uploads with arbitrary field values."""
    fields = [(n, v.decode("latin-1")) for n, v, is_file in items if not is_file]
    files = [(n, "a.wav", "audio/wav", v) for n, v, is_file in items if is_file]
    body, ctype = multipart.encode(fields, files)
    form = _client_error(multipart.parse, ctype, body, 1 << 16)
    if form is not None:
        _client_error(audio.transcription_to_canonical, form, translate)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["multipart/form-data; boundary=xx", "multipart/form-data",
                                                 "text/plain", "multipart/form-data; boundary=\"a b\""]))
def test_multipart_bytes(raw, ctype):
    """Arbitrary bytes, and mutations of a real upload."""
    _client_error(multipart.parse, ctype, b"--xx\r\n" + raw, 1 << 16)
    body, real = multipart.encode([("model", "w")], [("file", "a", "audio/wav", raw)])
    cut = body[:len(raw) % max(1, len(body))]
    _client_error(multipart.parse, real, cut, 1 << 16)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_upload_readers(raw):
    _client_error(probe.audio_seconds, raw, "x")
    _client_error(probe.pdf_pages, b"%PDF-" + raw, None)
    decode_png(b"\x89PNG\r\n\x1a\n" + raw)
    assert isinstance(sim_audio.transcribe(raw), str)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_simulator_media_round_trips(text):
    assert sim_ocr.read(decode_png(sim_ocr.png(sim_ocr.render(text)))) == text
    if text.strip():
        assert sim_audio.transcribe(sim_audio.wav(text)) == text
        assert sim_audio.transcribe(sim_audio.mp3(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_data_urls(s):
    _client_error(ocr.data_url, "data:image/png;base64," + s, "document", 1 << 16)
