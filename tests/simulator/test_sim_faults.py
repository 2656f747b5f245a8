"""Fault directives: parsing, garbage tolerance, and the error mapping."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import canonical as c
from gateway import errors
from gateway.simulator.faults import Fault, fault_error, parse_fault


def req(*texts: str) -> c.Request:
    return c.Request("sim-small", tuple(c.Message("user", (c.TextPart(t),)) for t in texts))


def test_full_directive():
    f = parse_fault(req("hi [[sim status=500 delay_ms=200 disconnect_after=3 chunk_chars=4 "
                        "chunk_delay_ms=10 retry_after=2 no_usage=1 message=\"out of cheese\"]]"))
    assert f == Fault(status=500, delay=0.2, disconnect_after=3, chunk_chars=4,
                      chunk_delay=0.01, retry_after=2, no_usage=True, message="out of cheese")


def test_no_directive_and_only_last_user_message():
    assert parse_fault(req("plain")) == Fault()
    assert parse_fault(req("[[sim status=500]]", "second")) == Fault()


def test_last_user_message_with_text_when_last_is_a_tool_result():
    msgs = (c.Message("user", (c.TextPart("get_x [[sim chunk_chars=2]]"),)),
            c.Message("assistant", (c.ToolCallPart("call_1", "get_x"),)),
            c.Message("user", (c.ToolResultPart("call_1", (c.TextPart("r"),)),)))
    assert parse_fault(c.Request("m", msgs)).chunk_chars == 2


def test_seconds_aliases_bare_flags_and_overrides():
    f = parse_fault(req("[[sim delay=1.5 chunk_delay=0.25 no_usage]] [[sim status=429]]"))
    assert (f.delay, f.chunk_delay, f.no_usage, f.status) == (1.5, 0.25, True, 429)


def test_garbage_is_ignored():
    f = parse_fault(req("[[sim status=abc delay_ms=-5 chunk_chars=0 disconnect_after=-1 "
                        "retry_after=x no_usage=maybe wat=1 =3 chunk_delay_ms=nan status=99]]"))
    assert f == Fault()
    assert parse_fault(req("[[sim status=503 delay_ms=inf]]")) == Fault(status=503)
    assert parse_fault(req("[[simulate status=500]] [[sim status=500")) == Fault()


def test_error_mapping():
    assert fault_error(Fault()) is None
    assert fault_error(Fault(status=200)) is None
    rl = fault_error(Fault(status=429, retry_after=2))
    assert isinstance(rl, errors.RateLimited) and rl.retry_after == 2
    assert rl.headers["Retry-After"] == "2"
    bad = fault_error(Fault(status=404, message="nope"))
    assert isinstance(bad, errors.UpstreamClientError) and bad.message == "nope"
    assert isinstance(fault_error(Fault(status=503)), errors.UpstreamError)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]sim =_\"'0123456789.-abcdeflnorstuy\n")),
               max_size=80))
def test_parse_never_crashes(body):
    f = parse_fault(req(f"[[sim {body}]] {body}"))
    assert isinstance(f, Fault)
