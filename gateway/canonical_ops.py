"""The internal model of the non-chat inference operations: embeddings, rerank, token
counting, speech, transcription, search and OCR.

Chat's model lives in canonical.py; these are kept apart because they share nothing with
messages and stream events. Like canonical.py: frozen dataclasses that check themselves,
no wire shapes (those stay private to the codecs), no I/O. Every codec translates to and
from these values, never dialect to dialect.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")

# MIME type of each speech format, as OpenAI's API answers it.
SPEECH_MIME = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac",
               "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}


class Invalid(ValueError):
    """A value that breaks one of these types' rules (a bug in a codec, not in a request)."""


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise Invalid(what)


def _ints(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)


# ---------------------------------------------------------------- embeddings

@dataclass(frozen=True)
class EmbedRequest:
    """Inputs are texts, or token arrays (OpenAI lets clients send pre-tokenised input)."""
    model: str
    inputs: tuple[str | tuple[int, ...], ...]
    dimensions: int | None = None
    task: str | None = None          # Gemini's taskType, passed through where understood
    user: str | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.inputs, tuple) and len(self.inputs) > 0, "EmbedRequest needs inputs")
        _check(all(isinstance(x, str) or _ints(x) for x in self.inputs),
               "EmbedRequest.inputs holds strings or token tuples")
        _check(self.dimensions is None or (isinstance(self.dimensions, int) and self.dimensions > 0),
               "EmbedRequest.dimensions must be a positive int")


@dataclass(frozen=True)
class EmbedResult:
    vectors: tuple[tuple[float, ...], ...]
    input_tokens: int
    model: str = ""

    def __post_init__(self) -> None:
        _check(all(isinstance(v, tuple) for v in self.vectors), "EmbedResult.vectors holds tuples")
        _check(isinstance(self.input_tokens, int) and self.input_tokens >= 0,
               "EmbedResult.input_tokens must be a non-negative int")


# ---------------------------------------------------------------- rerank

@dataclass(frozen=True)
class RerankRequest:
    """documents are the texts scored; originals keeps what the client sent (string or
    object) so return_documents can echo it back untouched."""
    model: str
    query: str
    documents: tuple[str, ...]
    top_n: int | None = None
    return_documents: bool = False
    max_tokens_per_doc: int | None = None
    originals: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        _check(isinstance(self.query, str), "RerankRequest.query must be str")
        _check(isinstance(self.documents, tuple) and all(isinstance(d, str) for d in self.documents),
               "RerankRequest.documents holds strings")
        _check(self.top_n is None or (isinstance(self.top_n, int) and self.top_n > 0),
               "RerankRequest.top_n must be a positive int")


@dataclass(frozen=True)
class RerankHit:
    index: int
    score: float


@dataclass(frozen=True)
class RerankResult:
    """hits sorted best first; search_units as the upstream billed them (0: unknown)."""
    hits: tuple[RerankHit, ...]
    search_units: int = 0
    input_tokens: int = 0

    def __post_init__(self) -> None:
        scores = [h.score for h in self.hits]
        _check(scores == sorted(scores, reverse=True), "RerankResult.hits must be sorted best first")


# ---------------------------------------------------------------- token counting

@dataclass(frozen=True)
class CountResult:
    input_tokens: int
    exact: bool


# ---------------------------------------------------------------- audio

@dataclass(frozen=True)
class SpeechRequest:
    model: str
    input: str
    voice: str = "alloy"
    format: str = "mp3"
    speed: float = 1.0
    instructions: str | None = None
    stream_format: str = "audio"      # "audio" (raw bytes as they come) or "sse"

    def __post_init__(self) -> None:
        _check(isinstance(self.input, str) and self.input != "", "SpeechRequest.input must be non-empty")
        _check(self.format in SPEECH_FORMATS, f"unknown speech format {self.format!r}")
        _check(0.25 <= self.speed <= 4.0, "SpeechRequest.speed is within 0.25..4")
        _check(self.stream_format in ("audio", "sse"), "SpeechRequest.stream_format is audio or sse")


@dataclass(frozen=True)
class SpeechResult:
    audio: bytes
    format: str

    @property
    def media_type(self) -> str:
        return SPEECH_MIME.get(self.format, "application/octet-stream")


@dataclass(frozen=True)
class TranscriptionRequest:
    """translate: the /translations route (always English out)."""
    model: str
    audio: bytes
    filename: str
    media_type: str = "application/octet-stream"
    language: str | None = None
    prompt: str | None = None
    response_format: str = "json"
    timestamp_granularities: tuple[str, ...] = ("segment",)
    temperature: float | None = None
    translate: bool = False
    stream: bool = False

    def __post_init__(self) -> None:
        _check(isinstance(self.audio, bytes) and len(self.audio) > 0, "TranscriptionRequest.audio is empty")
        _check(self.response_format in TRANSCRIPT_FORMATS,
               f"unknown transcription format {self.response_format!r}")
        _check(all(g in ("word", "segment") for g in self.timestamp_granularities),
               "timestamp granularities are word or segment")


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str


@dataclass(frozen=True)
class TranscriptionResult:
    text: str
    duration: float
    language: str = "english"
    segments: tuple[Segment, ...] = ()
    words: tuple[Word, ...] = ()

    def __post_init__(self) -> None:
        _check(isinstance(self.text, str), "TranscriptionResult.text must be str")
        _check(self.duration >= 0, "TranscriptionResult.duration must be >= 0")


# ---------------------------------------------------------------- search

@dataclass(frozen=True)
class SearchRequest:
    queries: tuple[str, ...]
    max_results: int = 10
    domains: tuple[str, ...] = ()      # allow list; a leading "-" excludes a domain
    country: str | None = None
    model: str = ""

    def __post_init__(self) -> None:
        _check(len(self.queries) > 0 and all(isinstance(q, str) and q for q in self.queries),
               "SearchRequest needs non-empty queries")
        _check(isinstance(self.max_results, int) and 1 <= self.max_results <= 20,
               "SearchRequest.max_results is within 1..20")


@dataclass(frozen=True)
class SearchHit:
    title: str
    url: str
    snippet: str
    date: str | None = None


@dataclass(frozen=True)
class SearchResult:
    hits: tuple[SearchHit, ...]


# ---------------------------------------------------------------- OCR

@dataclass(frozen=True)
class OcrRequest:
    """The document as bytes (the gateway fetched or decoded it) or as a URL an upstream
    that fetches for itself may be given; kind says which Mistral shape it came in."""
    model: str
    kind: str                         # "document_url" | "image_url"
    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    pages: tuple[int, ...] | None = None
    include_image_base64: bool = False

    def __post_init__(self) -> None:
        _check(self.kind in ("document_url", "image_url"), f"unknown document kind {self.kind!r}")
        _check((self.url is None) != (self.data is None), "OcrRequest needs exactly one of url and data")
        _check(self.pages is None or _ints(self.pages), "OcrRequest.pages holds ints")


@dataclass(frozen=True)
class OcrPage:
    index: int
    markdown: str
    width: int = 0
    height: int = 0
    dpi: int = 72
    images: tuple[dict, ...] = ()


@dataclass(frozen=True)
class OcrResult:
    pages: tuple[OcrPage, ...]
    model: str = ""
    doc_size_bytes: int | None = None
