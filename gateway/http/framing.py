"""One framer per dialect: how a stream's events, its closing trailer and an in-band
error are written on the wire, and the headers such a stream starts with.

The route decodes, asks the engine for an OpenStream, and hands both to `relay`; the
engine meters and settles, the framer only turns values into bytes.
"""
from __future__ import annotations

from typing import Any

from quart import Response

from gateway import canonical as c
from gateway import errors
from gateway.billing.pricing import format_usd
from gateway.codecs.sse import encode_event
from gateway.engine.call import OpenStream, Outcome
from gateway.http import common

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}


def cost_note(outcome: Outcome) -> bytes:
    # SSE comments are ignored by SDKs but let curl users and the tests read the bill.
    return (f": prism cost={format_usd(outcome.cost_micros)} tokens_in={outcome.tokens_in} "
            f"tokens_out={outcome.tokens_out} estimated={str(outcome.estimated).lower()}\n\n"
            ).encode()


class Framer:
    """OpenAI-style chunks (chat and legacy completions): `data: {chunk}` events, the
    bill as a comment, then `data: [DONE]`; errors as an OpenAI error object."""
    headers = SSE_HEADERS
    dialect = "openai"

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def encode(self, ev: c.StreamEvent) -> bytes:
        return b"".join(encode_event(common.dumps(chunk)) for chunk in self.encoder.encode(ev))

    def trailer(self, outcome: Outcome) -> bytes:
        return cost_note(outcome) + b"data: [DONE]\n\n"

    def error_frame(self, err: errors.PrismError) -> bytes:
        return encode_event(common.dumps(common.error_body(err, self.dialect)))


class AnthropicFramer(Framer):
    """Named events; the bill goes before the closing events so message_stop stays the
    last thing on the wire, and the closing message_delta carries what was billed."""
    dialect = "anthropic"

    @staticmethod
    def frames(frames: list[Any]) -> bytes:
        return b"".join(encode_event(common.dumps(data), name) for name, data in frames)

    def encode(self, ev: c.StreamEvent) -> bytes:
        return self.frames(self.encoder.encode(ev))

    def trailer(self, outcome: Outcome) -> bytes:
        billed = c.Usage(outcome.tokens_in, outcome.tokens_out, estimated=outcome.estimated)
        return cost_note(outcome) + self.frames(self.encoder.close(billed))

    def error_frame(self, err: errors.PrismError) -> bytes:
        return encode_event(common.dumps(common.error_body(err, self.dialect)), "error")


class GeminiFramer(Framer):
    """`data: {GenerateContentResponse}` events and no comment after the last one:
    google-genai reads every non-`data:` line as JSON and fails on a comment."""
    dialect = "gemini"

    @staticmethod
    def frames(chunks: list[dict]) -> bytes:
        return b"".join(encode_event(common.dumps(chunk)) for chunk in chunks)

    def encode(self, ev: c.StreamEvent) -> bytes:
        return self.frames(self.encoder.encode(ev))

    def trailer(self, outcome: Outcome) -> bytes:
        return self.frames(self.encoder.end())

    def error_frame(self, err: errors.PrismError) -> bytes:
        # google-genai raises an APIError for a data line that opens with {"error":
        return encode_event(common.dumps(common.error_body(err, self.dialect)))


class ResponsesFramer(Framer):
    """Typed Responses events. The closing frames are held back (`held`) until the
    route has stored the finished response, so a client that reads the end can fetch
    it at once."""

    def __init__(self, encoder: Any) -> None:
        super().__init__(encoder)
        self.held: list[bytes] = []

    def frames(self, events: list[dict]) -> bytes:
        return b"".join(encode_event(common.dumps(e), e["type"]) for e in events)

    def encode(self, ev: c.StreamEvent) -> bytes:
        return self.frames(self.encoder.encode(ev))

    def trailer(self, outcome: Outcome) -> bytes:
        # What was billed stands in for usage the upstream never reported.
        billed = c.Usage(input_tokens=outcome.tokens_in, output_tokens=outcome.tokens_out,
                         estimated=outcome.estimated)
        self.held.append(cost_note(outcome) + self.frames(self.encoder.finish(billed)))
        return b""

    def error_frame(self, err: errors.PrismError) -> bytes:
        return self.frames(self.encoder.fail(err.type_name, err.message))


def stream_headers(st: OpenStream, framer: Framer) -> dict[str, str]:
    return {**framer.headers, **common.outcome_headers(None, st.prep.entry.model.id, st.prep)}


def relay(st: OpenStream, framer: Framer) -> Response:
    """The streamed response: the engine's relay of `st`, framed for the dialect."""
    body = common.services().pipeline.stream_body(st, framer.encode, framer.trailer,
                                                  framer.error_frame)
    return Response(body, headers=stream_headers(st, framer))
