"""Fetching a client's reference image (image_url) without becoming an SSRF proxy.

The gateway fetches a URL only when a route needs the bytes inline. Every hop is
vetted the same way:

    scheme http/https only, no credentials in the URL
    -> resolve the host (an injectable resolver; trio's getaddrinfo by default)
    -> refuse if ANY address is loopback, link-local, private, CGNAT, multicast,
       reserved, unspecified, cloud metadata, or an IPv4-mapped / NAT64 IPv6 form of one
    -> connect to the vetted address itself (the Host header and TLS SNI keep the
       name), so a second DNS answer cannot swap in another address (DNS rebinding)
    -> redirects are followed by hand, at most max_redirects, each one vetted again
    -> the body is streamed and abandoned past max_bytes; the whole fetch has one deadline

allow_private lifts the private/loopback refusal (tests fetch from a local simulator);
metadata addresses stay refused even then. Every refusal is a 400 invalid_request
(code image_url_refused) whose message says why.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urljoin, urlsplit

import httpx
import trio

from gateway import errors

Resolver = Callable[[str, int], Awaitable[list[str]]]

METADATA = frozenset({ipaddress.ip_address("169.254.169.254"),
                      ipaddress.ip_address("fd00:ec2::254")})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Fetched:
    url: str
    content: bytes
    content_type: str


def refused(message: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(f"image_url refused: {message}", field="image_url",
                                 code="image_url_refused")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def address_problem(ip_text: str, *, allow_private: bool = False) -> str | None:
    """Why this address may not be fetched from, or None when it may."""
    try:
        ip = ipaddress.ip_address(ip_text.split("%", 1)[0])
    except ValueError:
        return f"{ip_text!r} is not an IP address"
    if ip in METADATA:
        return f"{ip} is a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
                                   if ip in _NAT64 else None)
        if inner is not None:
            why = address_problem(str(inner), allow_private=allow_private)
            return f"{ip} maps to {why}" if why else None
    checks = (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("reserved", ip.is_reserved),
              ("carrier-grade NAT (100.64.0.0/10)",
               isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
              ("private", ip.is_private), ("non-global", not ip.is_global))
    for name, hit in checks:
        if hit:
            if allow_private and name not in ("unspecified", "multicast", "reserved"):
                return None
            return f"{ip} is {'an' if name[0] in 'aeiou' else 'a'} {name} address"
    return None


async def vet(url: str, resolver: Resolver, allow_private: bool) -> tuple[httpx.URL, str, str]:
    """(URL to connect to, the vetted IP, the original host name) or a refusal."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise refused(f"only http and https URLs are fetched, not {parts.scheme or 'no scheme'!r}")
    if parts.username or parts.password:
        raise refused("URLs with credentials are not fetched")
    host = parts.hostname
    if not host:
        raise refused("the URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
        addresses = [str(literal)]
    except ValueError:
        try:
            addresses = await resolver(host, port)
        except OSError as exc:
            raise refused(f"cannot resolve {host!r} ({exc})") from None
    if not addresses:
        raise refused(f"{host!r} resolves to no address")
    for address in addresses:
        why = address_problem(address, allow_private=allow_private)
        if why:
            raise refused(f"{host!r} resolves to a forbidden address: {why}")
    ip = addresses[0]
    try:
        target = httpx.URL(url).copy_with(host=ip, port=port, fragment=None)
    except (httpx.InvalidURL, ValueError) as exc:
        raise refused(f"not a valid URL ({exc})") from None
    return target, ip, host


async def fetch(url: str, *, resolver: Resolver = system_resolver, allow_private: bool = False,
                max_bytes: int = 10 * 1024 * 1024, timeout: float = 10.0,
                max_redirects: int = 3,
                transport: httpx.AsyncBaseTransport | None = None) -> Fetched:
    """GET one reference image under the rules in the module docstring."""
    try:
        with trio.fail_after(timeout):
            return await _fetch(url, resolver, allow_private, max_bytes, max_redirects, transport)
    except trio.TooSlowError:
        raise refused(f"fetching {url!r} took longer than {timeout:g}s") from None


async def _fetch(url: str, resolver: Resolver, allow_private: bool, max_bytes: int,
                 max_redirects: int, transport: httpx.AsyncBaseTransport | None) -> Fetched:
    async with httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False,
                                 timeout=None) as client:
        for _hop in range(max_redirects + 1):
            target, _ip, host = await vet(url, resolver, allow_private)
            port = urlsplit(url).port
            headers = {"host": host if port is None else f"{host}:{port}",
                       "accept": "image/*"}
            extensions = {"sni_hostname": host} if target.scheme == "https" else {}
            request = client.build_request("GET", target, headers=headers, extensions=extensions)
            try:
                resp = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise refused(f"fetching {url!r} failed ({type(exc).__name__})") from None
            try:
                if resp.status_code in _REDIRECTS:
                    location = resp.headers.get("location")
                    if not location:
                        raise refused(f"{url!r} redirected without a Location")
                    url = urljoin(url, location)
                    continue
                if resp.status_code != 200:
                    raise refused(f"{url!r} answered HTTP {resp.status_code}")
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise refused(f"{url!r} is {declared} bytes, over the {max_bytes} byte cap")
                body = bytearray()
                try:
                    # Decoded bytes: the cap must hold after gzip, not before.
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise refused(f"{url!r} is over the {max_bytes} byte cap")
                except httpx.HTTPError as exc:
                    raise refused(f"reading {url!r} failed ({type(exc).__name__})") from None
                ctype = resp.headers.get("content-type", "application/octet-stream")
                return Fetched(url, bytes(body), ctype.split(";")[0].strip())
            finally:
                await resp.aclose()
        raise refused(f"more than {max_redirects} redirects")
