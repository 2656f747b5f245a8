"""The legacy Completions codec: request decoding, the text_completion response and
its stream chunks, checked against the official SDK's types."""
from __future__ import annotations

import pytest
from openai.types import Completion

from gateway.canonical import (
    Finish, Message, Response, StreamStart, TextDelta, TextPart, ThinkingDelta, Usage,
    UsageEvent,
)
from gateway.codecs import openai_completions as C
from gateway.errors import InvalidRequest


def body(**kw) -> dict:
    return {"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon", **kw}


def refused(b: dict, field: str) -> str:
    with pytest.raises(InvalidRequest) as exc:
        C.to_canonical_request(b)
    assert exc.value.field == field, exc.value.message
    return exc.value.message


def test_prompt_becomes_one_user_message_with_legacy_defaults():
    req = C.to_canonical_request(body())
    assert req.messages == (Message("user", (TextPart("Once upon"),)),)
    assert req.max_tokens == C.DEFAULT_MAX_TOKENS == 16
    assert req.tools == () and req.stream is False and req.include_usage is False


def test_settings_carry_over():
    req = C.to_canonical_request(body(
        prompt=["only one"], max_tokens=5, temperature=0.3, top_p=0.5, stop=["\n"], seed=7,
        user="u", stream=True, stream_options={"include_usage": True}, n=1, best_of=1,
        logprobs=2, logit_bias={"1": 2}, presence_penalty=0.5, echo=False))
    assert req.messages[0].text == "only one"
    assert (req.max_tokens, req.temperature, req.top_p, req.stop, req.seed, req.user) == \
        (5, 0.3, 0.5, ("\n",), 7, "u")
    assert req.stream and req.include_usage
    assert req.metadata == {"openai_extra": {"presence_penalty": 0.5}}


@pytest.mark.parametrize("extra, field, words", [
    ({"prompt": [1, 2, 3]}, "prompt", "token ids"),
    ({"prompt": [[1, 2], [3]]}, "prompt", "token ids"),
    ({"prompt": ["a", "b"]}, "prompt", "several prompts"),
    ({"prompt": []}, "prompt", "required"),
    ({"prompt": None}, "prompt", "required"),
    ({"suffix": "end"}, "suffix", "not supported"),
    ({"n": 2}, "n", "must be 1"),
    ({"best_of": 3}, "best_of", "must be 1"),
    ({"echo": "yes"}, "echo", "boolean"),
    ({"max_tokens": 0}, "max_tokens", "positive"),
    ({"temperature": 9}, "temperature", "number"),
    ({"stop": [1]}, "stop", "string"),
    ({"logprobs": "x"}, "logprobs", "integer"),
    ({"model": None}, "model", "required"),
    ({"stream_options": 1}, "stream_options", "object"),
])
def test_refusals_name_their_field(extra, field, words):
    assert words in refused(body(**extra), field)


def test_response_shape_validates_and_echo_prefixes_the_prompt():
    req = C.to_canonical_request(body(echo=True))
    resp = Response("x", "up", Message("assistant", (TextPart(" a time"),)), "length",
                    Usage(input_tokens=3, output_tokens=2))
    out = C.from_canonical_response(resp, id="cmpl-1", model="prism-mini", created=5,
                                    prefix=C.echo_prefix(body(echo=True), req))
    parsed = Completion.model_validate(out)
    assert parsed.choices[0].text == "Once upon a time"
    assert parsed.choices[0].finish_reason == "length"
    assert parsed.usage.total_tokens == 5 and parsed.object == "text_completion"
    assert C.echo_prefix(body(), req) == ""


@pytest.mark.parametrize("finish, wire", [("stop", "stop"), ("length", "length"),
                                          ("content_filter", "content_filter"),
                                          ("error", "stop"), ("tool_calls", "stop")])
def test_finish_reasons_are_ones_the_sdk_knows(finish, wire):
    out = C.from_canonical_response(Response("x", "up", Message("assistant", ()), finish),
                                    id="cmpl-1", model="m", created=1)
    assert Completion.model_validate(out).choices[0].finish_reason == wire
    assert "usage" not in out


def test_stream_chunks_with_echo_finish_and_usage():
    enc = C.StreamEncoder("cmpl-1", "prism-mini", 5, include_usage=True, prefix="Q: ")
    events = [StreamStart("x", "up"), ThinkingDelta("hidden"), TextDelta("an"), TextDelta("swer"),
              Finish("stop"), UsageEvent(Usage(4, 2))]
    chunks = [ch for ev in events for ch in enc.encode(ev)]
    texts = [ch["choices"][0]["text"] for ch in chunks if ch["choices"]]
    assert "".join(texts) == "Q: answer"
    assert [ch["choices"][0]["finish_reason"] for ch in chunks if ch["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2
    for ch in chunks:
        assert ch["object"] == "text_completion" and ch["id"] == "cmpl-1"
        # Mid-stream chunks carry finish_reason null, as OpenAI sends them; the SDK
        # parses leniently, so only the finished ones are held to the strict type.
        if not ch["choices"] or ch["choices"][0]["finish_reason"] is not None:
            Completion.model_validate(ch)
        else:
            Completion.model_construct(**ch)


def test_stream_without_include_usage_has_no_usage_chunk():
    enc = C.StreamEncoder("cmpl-1", "m", 5, include_usage=False)
    chunks = [ch for ev in (StreamStart("x", "up"), TextDelta("t"), Finish("length"),
                            UsageEvent(Usage(1, 1))) for ch in enc.encode(ev)]
    assert all(ch["choices"] for ch in chunks) and "usage" not in chunks[-1]
