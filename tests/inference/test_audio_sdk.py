"""Speech, streamed speech, transcription and translation through the official openai
SDK against a running gateway: every upstream kind that serves them, every transcript
response_format, money exact to the micro-dollar, refusals, upload caps, failover."""
from __future__ import annotations

import io
import json

import httpx
import mutagen
import openai
import pytest

from gateway.simulator import sim_audio
from tests.inference import setup

TEXT = "Prism speaks this sentence. Then it hears it again, word for word."


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    g = setup.start(tmp_path_factory.mktemp("inf-audio"), sim_url,
                    inference={"upload_max_bytes": 2_000_000})
    yield g
    g.stop()


@pytest.fixture
def key(gw):
    return gw.create_key(credits_usd=5.0)


def _oa(gw, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)


def _stats(sim_url) -> dict:
    return httpx.get(sim_url + "/_sim/stats").json()["inference"]


@pytest.mark.parametrize("model,fmt", [("tts-openai", "mp3"), ("tts-openai", "wav"),
                                       ("tts-gemini", "wav"), ("tts-inproc", "mp3")])
def test_speech_to_file_with_its_duration(gw, key, tmp_path, model, fmt):
    before = setup.wallet(gw, key["account_id"])
    res = _oa(gw, key).audio.speech.create(model=model, voice="alloy", input=TEXT, response_format=fmt)
    path = tmp_path / f"speech.{fmt}"
    res.write_to_file(path)
    length = mutagen.File(path).info.length
    assert length == pytest.approx(sim_audio.speech_seconds(TEXT), abs=0.03)
    # 15 micro-USD per input character.
    assert before - setup.wallet(gw, key["account_id"]) == 15 * len(TEXT)
    assert setup.last_log(gw, key["account_id"]).cost_micros == 15 * len(TEXT)
    setup.money_ok(gw)


def test_streamed_speech(gw, key, tmp_path):
    client = _oa(gw, key)
    long_text = " ".join([TEXT] * 8)
    with client.audio.speech.with_streaming_response.create(
            model="tts-openai", voice="nova", input=long_text, response_format="wav") as r:
        assert r.headers["x-prism-model"] == "tts-openai"
        chunks = list(r.iter_bytes(8192))
    data = b"".join(chunks)
    assert len(chunks) > 1 and mutagen.File(io.BytesIO(data)).info.length == pytest.approx(
        sim_audio.speech_seconds(long_text), abs=0.03)
    raw = httpx.post(gw.url + "/v1/audio/speech/stream", headers={"authorization": f"Bearer {key['key']}"},
                     json={"model": "tts-inproc", "voice": "alloy", "input": TEXT, "response_format": "mp3"})
    assert raw.status_code == 200 and sim_audio.transcribe(raw.content) == TEXT
    before = setup.wallet(gw, key["account_id"])
    sse = httpx.post(gw.url + "/v1/audio/speech", headers={"authorization": f"Bearer {key['key']}"},
                     json={"model": "tts-openai", "voice": "alloy", "input": TEXT, "response_format": "pcm",
                           "stream_format": "sse"})
    events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"} and events[-1]["type"] == "speech.audio.done"
    import base64
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert sim_audio.transcribe(pcm) == TEXT
    assert before - setup.wallet(gw, key["account_id"]) == 15 * len(TEXT)
    setup.money_ok(gw)


def _wav(text: str = TEXT) -> bytes:
    return sim_audio.wav(text)


@pytest.mark.parametrize("model", ["stt-openai", "stt-gemini", "stt-inproc"])
def test_transcription_each_kind_billed_by_the_minute(gw, key, model):
    before = setup.wallet(gw, key["account_id"])
    audio = _wav()
    seconds = mutagen.File(io.BytesIO(audio)).info.length
    out = _oa(gw, key).audio.transcriptions.create(model=model, file=("hello.wav", audio, "audio/wav"))
    assert out.text == TEXT
    # 6000 micro-USD a minute, per millisecond, rounded up once.
    cost = -(-6000 * round(seconds * 1000) // 60_000)
    assert before - setup.wallet(gw, key["account_id"]) == cost
    assert setup.last_log(gw, key["account_id"]).cost_micros == cost
    setup.money_ok(gw)


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
@pytest.mark.parametrize("kind", ["transcriptions", "translations"])
def test_every_response_format(gw, key, fmt, kind):
    client = _oa(gw, key)
    api = client.audio.transcriptions if kind == "transcriptions" else client.audio.translations
    extra = {"timestamp_granularities": ["word", "segment"]} if fmt == "verbose_json" and kind == "transcriptions" else {}
    out = api.create(model="stt-openai", file=("a.mp3", sim_audio.mp3(TEXT), "audio/mpeg"),
                     response_format=fmt, **extra)
    if fmt == "json":
        assert out.text == TEXT
    elif fmt == "text":
        assert out.strip() == TEXT
    elif fmt == "srt":
        assert out.startswith("1\n00:00:00,000 --> ") and "Then it hears it again" in out
    elif fmt == "vtt":
        assert out.startswith("WEBVTT") and "Prism speaks this sentence." in out
    else:
        assert out.text == TEXT and out.duration == pytest.approx(sim_audio.speech_seconds(TEXT), abs=0.03)
        assert len(out.segments) == 2 and out.segments[1].text.strip().startswith("Then")
        if extra:
            assert [w.word for w in out.words][:2] == ["Prism", "speaks"]


def test_streamed_transcription(gw, key):
    stream = _oa(gw, key).audio.transcriptions.create(model="stt-inproc", file=("a.wav", _wav(), "audio/wav"),
                                                      stream=True)
    events = list(stream)
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert deltas == TEXT and events[-1].type == "transcript.text.done" and events[-1].text == TEXT


def test_failover_before_the_first_byte(gw, key):
    r = _oa(gw, key).audio.transcriptions.with_raw_response.create(
        model="stt-failover", file=("a.wav", _wav(), "audio/wav"))
    assert r.headers["x-prism-failover"] == "true" and r.parse().text == TEXT
    s = _oa(gw, key).audio.speech.with_raw_response.create(model="tts-failover", voice="alloy", input=TEXT,
                                                           response_format="wav")
    assert s.headers["x-prism-failover"] == "true" and sim_audio.transcribe(s.content) == TEXT


def _post_upload(gw, key, data: bytes, model="stt-openai", name="a.wav"):
    return httpx.post(gw.url + "/v1/audio/transcriptions", headers={"authorization": f"Bearer {key['key']}"},
                      files={"file": (name, data, "audio/wav")}, data={"model": model}, timeout=30)


@pytest.mark.parametrize("case,status,code", [
    ("unreadable", 400, "unreadable_audio"), ("empty", 400, None), ("oversized", 413, None),
    ("nocap", 400, "transcription_not_supported"), ("noprice", 402, "price_missing"),
])
def test_refusals_before_any_upstream_call(gw, key, sim_url, case, status, code):
    before, calls = setup.wallet(gw, key["account_id"]), _stats(sim_url)
    data, model = _wav(), "stt-openai"
    if case == "unreadable":
        data = b"this is not audio at all" * 10
    elif case == "empty":
        data = b""
    elif case == "oversized":
        data = b"RIFF" + bytes(2_100_000)
    elif case == "nocap":
        model = "tts-openai"
    elif case == "noprice":
        model = "stt-noprice"
    r = _post_upload(gw, key, data, model)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"]["code"] == code
    assert setup.wallet(gw, key["account_id"]) == before and _stats(sim_url) == calls
    setup.money_ok(gw)


def test_speech_refusals(gw, key, sim_url):
    before, calls = setup.wallet(gw, key["account_id"]), _stats(sim_url)
    client = _oa(gw, key)
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-gemini", voice="alloy", input=TEXT, response_format="mp3")
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-openai", voice="alloy", input="")
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="stt-openai", voice="alloy", input=TEXT)
    assert setup.wallet(gw, key["account_id"]) == before and _stats(sim_url) == calls
