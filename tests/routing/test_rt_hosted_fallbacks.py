"""routing/hosted: the refusal for a refused mid-conversation system message, and the
dropped-tools header for the route that served (pure)."""
from __future__ import annotations

import pytest

from gateway import canonical as c
from gateway import errors
from gateway.routing.hosted import dropped_header, mid_conversation_system, system_refusal


def _req(*roles: str, metadata: dict | None = None) -> c.Request:
    return c.Request(model="m", messages=tuple(c.Message(r, (c.TextPart(r),)) for r in roles),
                     metadata=metadata or {})


def _upstream(words: str) -> errors.UpstreamClientError:
    return errors.UpstreamClientError("refused", detail=f"upstream up answered HTTP 400: {words}")


def test_mid_conversation_means_after_a_turn():
    assert not mid_conversation_system(_req("system", "system", "user"))
    assert mid_conversation_system(_req("system", "user", "system"))
    assert mid_conversation_system(_req("user", "assistant", "system", "user"))


@pytest.mark.parametrize("words", [
    "role 'system' is not supported on this model",
    'messages: Unexpected role "system". The Messages API accepts a top-level `system`',
    "System message must be at the beginning.",
    "Unexpected role 'system' after role 'user'",
])
def test_upstream_words_about_the_system_role_become_the_fallback_refusal(words):
    err = system_refusal(_req("user", "system"), _upstream(words), "claude-x")
    assert isinstance(err, errors.InvalidRequest) and err.status == 400
    assert err.message.startswith("role 'system' is not supported")
    assert err.code == "unsupported_system_role" and err.field == "messages"
    assert words in err.detail and words not in err.message


def test_only_upstream_refusals_of_a_request_that_has_one():
    words = "role 'system' is not supported on this model"
    assert system_refusal(_req("system", "user"), _upstream(words), "m") is None
    assert system_refusal(_req("user", "system"), _upstream("max_tokens: too large"), "m") is None
    assert system_refusal(_req("user", "system"), errors.UpstreamError(words), "m") is None
    assert system_refusal(_req("user", "system"), errors.InvalidRequest(words), "m") is None


def test_dropped_header_follows_the_serving_kind():
    req = _req("user", metadata={"hosted_tools": [
        {"family": "anthropic", "name": "web_search", "spec": {"type": "web_search_20250305"}},
        {"family": "openai", "name": "web_search", "spec": {"type": "web_search"}}]})
    assert dropped_header(req, "anthropic") == "web_search"   # the Responses one, once
    assert dropped_header(req, "gemini") == "web_search"
    assert dropped_header(req, None) is None
    assert dropped_header(_req("user"), "gemini") is None
