"""The reference-image fetcher refuses every SSRF shape (gateway/media/fetch.py).

No test sends traffic to a non-loopback address: literal IPs are refused before any
connection, names resolve through an injected resolver, and the "public" cases are
answered by an httpx MockTransport that also records which address was dialled.
"""
from __future__ import annotations

import httpx
import pytest
import trio

from gateway import errors
from gateway.media import fetch

PUBLIC = "93.184.216.34"
PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 32


def resolver_for(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]
    return resolve


NAMES = resolver_for({
    "public.example": [PUBLIC],
    "internal.example": ["10.0.0.1"],
    "localhost.example": ["127.0.0.1"],
    "mixed.example": [PUBLIC, "192.168.0.7"],
    "metadata.example": ["169.254.169.254"],
    "v6loop.example": ["::1"],
    "mapped.example": ["::ffff:10.1.2.3"],
})


def mock(handler, seen: list | None = None) -> httpx.MockTransport:
    async def wrapped(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return await handler(request)
    return httpx.MockTransport(wrapped)


async def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})


async def refused(url: str, **kw) -> str:
    kw.setdefault("resolver", NAMES)
    kw.setdefault("transport", mock(ok))
    with pytest.raises(errors.InvalidRequest) as info:
        await fetch.fetch(url, **kw)
    assert info.value.status == 400 and info.value.code == "image_url_refused"
    return info.value.message


@pytest.mark.parametrize("url,why", [
    ("http://127.0.0.1/a.png", "loopback"),
    ("http://127.8.9.10/a.png", "loopback"),
    ("http://[::1]/a.png", "loopback"),
    ("http://10.0.0.1/a.png", "private"),
    ("http://172.16.5.4/a.png", "private"),
    ("http://192.168.1.1/a.png", "private"),
    ("http://[fc00::1]/a.png", "private"),
    ("http://100.64.0.1/a.png", "carrier-grade NAT"),
    ("http://169.254.10.10/a.png", "link-local"),
    ("http://[fe80::1]/a.png", "link-local"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://224.0.0.1/a.png", "multicast"),
    ("http://[ff02::1]/a.png", "multicast"),
    ("http://240.0.0.1/a.png", "reserved"),
    ("http://0.0.0.0/a.png", "unspecified"),
    ("http://[::]/a.png", "unspecified"),
    ("http://[::ffff:127.0.0.1]/a.png", "loopback"),
    ("http://[::ffff:169.254.169.254]/a.png", "metadata"),
    ("http://[64:ff9b::a00:1]/a.png", "private"),
])
async def test_literal_forbidden_addresses_are_refused(url, why):
    seen: list = []
    message = await refused(url, transport=mock(ok, seen))
    assert why in message
    assert seen == []   # refused before any connection


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://public.example/a.png",
                                 "gopher://public.example/", "data:image/png;base64,AAAA",
                                 "http://user:pw@public.example/a.png", "http:///nohost",
                                 "not a url"])
async def test_non_http_schemes_and_odd_urls_are_refused(url):
    await refused(url)


@pytest.mark.parametrize("host,why", [("internal.example", "private"),
                                      ("localhost.example", "loopback"),
                                      ("mixed.example", "private"),
                                      ("metadata.example", "metadata"),
                                      ("v6loop.example", "loopback"),
                                      ("mapped.example", "private")])
async def test_names_resolving_to_forbidden_addresses_are_refused(host, why):
    seen: list = []
    message = await refused(f"http://{host}/a.png", transport=mock(ok, seen))
    assert why in message and host in message
    assert seen == []


async def test_unresolvable_name_is_refused():
    assert "cannot resolve" in await refused("http://nowhere.example/a.png")


async def test_public_name_is_fetched_from_the_vetted_address():
    seen: list = []
    got = await fetch.fetch("https://public.example/img/a.png?x=1", resolver=NAMES,
                            transport=mock(ok, seen))
    assert got.content == PNG and got.content_type == "image/png"
    (req,) = seen
    # Dialled by IP (no second lookup can rebind it), named in Host and TLS SNI.
    assert req.url.host == PUBLIC and req.url.path == "/img/a.png"
    assert req.headers["host"] == "public.example"
    assert req.extensions.get("sni_hostname") == "public.example"


async def test_redirect_to_a_private_address_is_refused():
    seen: list = []

    async def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://internal.example/x.png"})
    message = await refused("http://public.example/a.png", transport=mock(redirect, seen))
    assert "internal.example" in message and "private" in message
    assert len(seen) == 1   # the redirect target was never contacted


@pytest.mark.parametrize("target", ["http://127.0.0.1/", "http://169.254.169.254/latest/",
                                    "http://[::ffff:10.0.0.1]/", "file:///etc/passwd"])
async def test_redirect_to_literal_forbidden_targets_is_refused(target):
    async def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"location": target})
    await refused("http://public.example/a.png", transport=mock(redirect))


async def test_too_many_redirects_are_refused():
    async def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "/again"})
    assert "redirects" in await refused("http://public.example/a.png", transport=mock(loop))


async def test_redirects_within_the_limit_are_followed():
    hops: list = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if len(hops) < 3:
            hops.append(request.url.path)
            return httpx.Response(302, headers={"location": f"/hop{len(hops)}"})
        return await ok(request)
    got = await fetch.fetch("http://public.example/a.png", resolver=NAMES,
                            transport=mock(handler))
    assert got.url == "http://public.example/hop3" and got.content == PNG


async def test_oversize_body_is_refused_while_streaming():
    async def big(request: httpx.Request) -> httpx.Response:
        async def body():
            for _ in range(100):
                yield b"\0" * 1024
        return httpx.Response(200, content=body())
    message = await refused("http://public.example/big.png", transport=mock(big),
                            max_bytes=10_000)
    assert "cap" in message


async def test_declared_oversize_is_refused_before_reading():
    async def big(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"\0" * 20_000)
    assert "cap" in await refused("http://public.example/big.png", transport=mock(big),
                                  max_bytes=10_000)


async def test_slow_upstream_times_out():
    async def slow(request: httpx.Request) -> httpx.Response:
        await trio.sleep(5)
        return await ok(request)
    with trio.fail_after(3):
        assert "longer than" in await refused("http://public.example/a.png",
                                              transport=mock(slow), timeout=0.2)


async def test_non_200_is_refused():
    async def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)
    assert "404" in await refused("http://public.example/a.png", transport=mock(missing))


async def test_allow_private_permits_loopback_but_never_metadata():
    got = await fetch.fetch("http://localhost.example/a.png", resolver=NAMES,
                            transport=mock(ok), allow_private=True)
    assert got.content == PNG
    await refused("http://169.254.169.254/", allow_private=True)
    await refused("http://metadata.example/", allow_private=True)


def test_address_problem_allows_public_addresses():
    for ip in (PUBLIC, "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert fetch.address_problem(ip) is None
