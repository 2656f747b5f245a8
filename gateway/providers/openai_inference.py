"""Embeddings and audio on an OpenAI-kind upstream: /embeddings, /audio/speech,
/audio/transcriptions and /audio/translations (uploads re-sent as multipart, always
asking for verbose_json so Prism renders whatever format the client wanted)."""
from __future__ import annotations

from typing import AsyncIterator

import httpx

from gateway import canonical_ops as o
from gateway.codecs import audio, embeddings, multipart
from gateway.config import ProviderConfig
from gateway.providers import base, inference_wire as wire


class OpenAIInference:
    def __init__(self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        key = base.api_key(config)
        self._client = base.make_client(config, {"authorization": f"Bearer {key}"} if key else {}, transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def embed(self, req: o.EmbedRequest, model: str) -> o.EmbedResult:
        data = await base.post_json(self._client, self.config.id, "/embeddings",
                                    embeddings.openai_upstream_body(req, model))
        return embeddings.openai_upstream_result(data, len(req.inputs))

    def speech_stream(self, req: o.SpeechRequest, model: str) -> AsyncIterator[bytes]:
        return wire.stream_bytes(self._client, self.config.id, "POST", "/audio/speech",
                                 content=wire.json_body(audio.speech_upstream_body(req, model)))

    async def speech(self, req: o.SpeechRequest, model: str) -> o.SpeechResult:
        data = await wire.read_bytes(self._client, self.config.id, "POST", "/audio/speech",
                                     content=wire.json_body(audio.speech_upstream_body(req, model)))
        return o.SpeechResult(audio=data, format=req.format)

    async def transcribe(self, req: o.TranscriptionRequest, model: str, duration: float) -> o.TranscriptionResult:
        body, ctype = multipart.encode(audio.transcription_upstream_fields(req, model),
                                       [("file", req.filename, req.media_type, req.audio)])
        path = "/audio/translations" if req.translate else "/audio/transcriptions"
        data = await wire.read_json(self._client, self.config.id, "POST", path, content=body,
                                    headers={"content-type": ctype})
        return audio.transcription_upstream_result(data, duration)
