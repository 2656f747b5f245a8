"""How the HTTP simulator speaks the OpenAI Responses API: ``POST /v1/responses``, for
OpenAI-kind providers configured with ``api = "responses"``.

The simulator is the server here, so it uses the codec's client-side halves
(openai_responses, its response and stream encoders). A stream is typed SSE events
ending with response.completed and no ``[DONE]`` line; a cut stream (disconnect_after)
lacks it, which is how the gateway's provider recognises one. Hosted tools are accepted
and not run: the answer is the simulator's usual one.
"""
from __future__ import annotations

from gateway import canonical as c
from gateway.codecs import openai_responses, sse
from gateway.codecs.openai_responses_stream import StreamEncoder
from gateway.simulator.wire import WireAdapter, bearer, dumps, openai_error


def _echo() -> dict:
    # The settings a Response object repeats; the simulator's answer repeats none.
    return openai_responses.request_echo({})


class _ResponsesStream:
    def __init__(self, req: c.Request, id: str, created: int) -> None:
        self._enc = StreamEncoder(id, req.model, created, _echo())

    def encode(self, ev: c.StreamEvent) -> bytes:
        return _frames(self._enc.encode(ev))

    def end(self) -> bytes:
        return _frames(self._enc.finish())


def _frames(events: list[dict]) -> bytes:
    return b"".join(sse.encode_event(dumps(e), e["type"]) for e in events)


RESPONSES = WireAdapter(
    name="responses",
    decode=lambda path, body: openai_responses.to_canonical_request(body),
    encode_response=lambda resp: openai_responses.from_canonical_response(
        resp, model=resp.model, response_id=resp.id, created_at=resp.created,
        request_echo=_echo()),
    stream_writer=_ResponsesStream,
    error_body=openai_error,
    credential=bearer,
)
