"""Fuzz the media decoders: the images request parser, the SSRF address check and
URL vetting. Only outcomes: a value, or our own client error."""
from __future__ import annotations

import ipaddress

import trio
from hypothesis import given, settings, strategies as st

from gateway import errors
from gateway.media import fetch, images

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
keys = st.sampled_from(["model", "prompt", "n", "size", "aspect_ratio", "quality", "style", "seed",
                        "negative_prompt", "response_format", "image_url", "user", "other"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=8))
def test_parse_gives_a_request_or_a_400(body):
    try:
        req = images.parse(body)
    except errors.InvalidRequest as exc:
        assert exc.status == 400
        return
    assert isinstance(req, images.ImageRequest) and 1 <= req.n <= 10
    assert images.upstream_body(req, "up")["model"] == "up"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.ip_addresses(), st.text(max_size=40)))
def test_address_problem_never_passes_a_forbidden_address(ip):
    why = fetch.address_problem(str(ip))
    try:
        addr = ipaddress.ip_address(str(ip))
    except ValueError:
        assert why is not None
        return
    inner = getattr(addr, "ipv4_mapped", None) or addr
    if why is None:
        assert inner.is_global and not inner.is_multicast


async def _no_dns(host: str, port: int) -> list[str]:
    raise OSError("fuzz: no DNS")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60),
                 st.builds(lambda s, h: f"{s}://{h}/x", st.sampled_from(["http", "https", "ftp", ""]),
                           st.text(max_size=30))))
def test_vet_gives_a_target_or_a_refusal(url):
    async def main():
        try:
            target, ip, host = await fetch.vet(url, _no_dns, False)
        except errors.InvalidRequest as exc:
            assert exc.code == "image_url_refused"
            return
        assert fetch.address_problem(ip) is None
    trio.run(main)
