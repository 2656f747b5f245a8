"""Embeddings, exact token counts and audio on a Gemini-kind upstream.

    embed        :batchEmbedContents (outputDimensionality passed on); Gemini reports no
                 usage for embeddings, so the input is counted with the local tokenizer
    count_tokens :countTokens on the generateContent body (exact)
    speech       :generateContent with responseModalities AUDIO and a speechConfig voice;
                 Gemini answers 16-bit PCM, which Prism wraps as WAV (or passes as pcm);
                 other formats would need a transcoder, so they are refused before the call
    transcribe   :generateContent with the audio inline and an instruction
"""
from __future__ import annotations

import base64
import re
from urllib.parse import quote

import httpx

from gateway import canonical as c
from gateway import canonical_ops as o
from gateway import errors, tokenizer
from gateway.codecs import embeddings, gemini
from gateway.codecs.audio import wav_header
from gateway.config import ProviderConfig
from gateway.providers import base

_VERSIONED = re.compile(r"/v1(?:alpha|beta)?\d*$")
SPEECH_FORMATS = ("wav", "pcm")
TRANSCRIBE = "Transcribe this audio exactly, word for word. Answer with the transcript only."
TRANSLATE = "Translate the speech in this audio into English. Answer with the translation only."


def pcm_rate(mime: str) -> int:
    m = re.search(r"rate=(\d+)", mime)
    return int(m.group(1)) if m else 24_000


class GeminiInference:
    speech_formats = SPEECH_FORMATS

    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        key = base.api_key(config)
        self._prefix = "" if _VERSIONED.search(config.base_url.rstrip("/")) else "/v1beta"
        self._client = base.make_client(config, {"x-goog-api-key": key} if key else {}, transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _path(self, model: str, method: str) -> str:
        return f"{self._prefix}/models/{quote(model.removeprefix('models/'), safe='-._~')}:{method}"

    async def _call(self, model: str, method: str, body: dict) -> dict:
        data = await base.post_json(self._client, self.config.id, self._path(model, method), body)
        if not isinstance(data, dict):
            raise errors.UpstreamProtocolError(f"upstream {self.config.id} sent a non-object body")
        return data

    async def embed(self, req: o.EmbedRequest, model: str) -> o.EmbedResult:
        texts = tuple(x if isinstance(x, str) else tokenizer.decode(list(x)) for x in req.inputs)
        data = await self._call(model, "batchEmbedContents", embeddings.gemini_upstream_body(req, model, texts))
        return embeddings.gemini_upstream_result(data, len(texts), sum(tokenizer.count_text(t) for t in texts))

    async def count_tokens(self, req: c.Request, model: str) -> o.CountResult:
        body = gemini.from_canonical_request(req, model)
        data = await self._call(model, "countTokens", {"contents": body.get("contents", [])}
                                if not body.get("systemInstruction") and not body.get("tools")
                                else {"generateContentRequest": {"model": "models/" + model.removeprefix("models/"),
                                                                 **body}})
        n = data.get("totalTokens")
        if not isinstance(n, int) or n < 0:
            raise errors.UpstreamProtocolError(f"upstream {self.config.id} countTokens has no totalTokens")
        return o.CountResult(input_tokens=n, exact=True)

    async def speech(self, req: o.SpeechRequest, model: str) -> o.SpeechResult:
        if req.format not in SPEECH_FORMATS:
            raise errors.InvalidRequest(f"response_format: this model's route can make {', '.join(SPEECH_FORMATS)}"
                                        f" audio, not {req.format}", field="response_format")
        text = req.input if not req.instructions else f"{req.instructions}: {req.input}"
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}],
                "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": {
                    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": req.voice}}}}}
        blob = _inline(await self._call(model, "generateContent", body), self.config.id)
        pcm = base64.b64decode(blob.get("data", ""))
        if req.format == "pcm":
            return o.SpeechResult(audio=pcm, format="pcm")
        return o.SpeechResult(audio=wav_header(len(pcm), pcm_rate(str(blob.get("mimeType", "")))) + pcm,
                              format="wav")

    async def transcribe(self, req: o.TranscriptionRequest, model: str, duration: float) -> o.TranscriptionResult:
        mime = req.media_type if req.media_type.startswith("audio/") else "audio/wav"
        ask = TRANSLATE if req.translate else TRANSCRIBE
        if req.prompt:
            ask += f" Context: {req.prompt}"
        body = {"contents": [{"role": "user", "parts": [
            {"inlineData": {"mimeType": mime, "data": base64.b64encode(req.audio).decode()}}, {"text": ask}]}]}
        data = await self._call(model, "generateContent", body)
        text = "".join(p.get("text", "") for p in _parts(data, self.config.id) if isinstance(p.get("text"), str))
        return o.TranscriptionResult(text=text.strip(), duration=duration,
                                     language="english" if req.translate else (req.language or "english"))


def _parts(data: dict, pid: str) -> list[dict]:
    cands = data.get("candidates")
    if not isinstance(cands, list) or not cands or not isinstance(cands[0], dict):
        raise errors.UpstreamProtocolError(f"upstream {pid} answered no candidates")
    parts = (cands[0].get("content") or {}).get("parts")
    if not isinstance(parts, list):
        raise errors.UpstreamProtocolError(f"upstream {pid} answered no parts")
    return [p for p in parts if isinstance(p, dict)]


def _inline(data: dict, pid: str) -> dict:
    for p in _parts(data, pid):
        blob = p.get("inlineData") or p.get("inline_data")
        if isinstance(blob, dict) and isinstance(blob.get("data"), str):
            return blob
    raise errors.UpstreamProtocolError(f"upstream {pid} answered no audio")
