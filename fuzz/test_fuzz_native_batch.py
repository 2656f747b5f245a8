"""Fuzz the readers of upstream batch APIs (gateway.jobs.native_wire): any JSON as a
result line or a batch object. Only outcomes: a Result or None (not a result line), a
Status, or our own upstream error."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway import errors
from gateway.jobs.native_wire import KINDS, Result, Status, decode_result, status_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 3000) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12)

NAMES = ("custom_id", "response", "status_code", "body", "error", "result", "type", "message",
         "metadata", "key", "code", "status", "choices", "content", "candidates", "usage")


def shaped():
    """JSON that often has the fields the readers look for, nested."""
    return st.recursive(
        json_values,
        lambda inner: st.dictionaries(st.sampled_from(NAMES), inner, max_size=5),
        max_leaves=16)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(KINDS), st.sampled_from(("chat", "responses")), shaped())
def test_decode_result(kind, api, item):
    try:
        res = decode_result(kind, api, item)
    except errors.PrismError as exc:
        assert exc.status >= 400
        return
    assert res is None or isinstance(res, Result)
    if res is not None and res.outcome == "errored":
        assert isinstance(res.error, errors.PrismError)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KINDS), st.one_of(json_values, st.dictionaries(
    st.sampled_from(("status", "processing_status", "metadata", "state", "done", "name")),
    json_values, max_size=4)))
def test_status_of(kind, obj):
    try:
        assert isinstance(status_of(kind, obj), Status)
    except errors.UpstreamError:
        pass
