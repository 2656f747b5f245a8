"""Budget webhooks go through the SSRF guard: a webhook aimed at cloud metadata or (by
default) a private address is refused and logged, and nothing is sent."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import httpx

import harness
from gateway.config import parse_config
from gateway.orgs.service import Orgs


async def test_webhook_to_forbidden_addresses_is_refused(tmp_path, caplog):
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    config = parse_config(harness.gateway_config(tmp_path, None))
    orgs = Orgs(None, SimpleNamespace(config=config), transport=httpx.MockTransport(handler))
    caplog.set_level(logging.WARNING, logger="prism.orgs")
    for url in ("http://169.254.169.254/latest", "http://127.0.0.1:9/hook",
                "http://10.0.0.8/hook"):
        await orgs._deliver(url, b"{}", "secret")
    assert sent == []
    assert caplog.text.count("refused by the SSRF guard") == 3

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    orgs = Orgs(None, SimpleNamespace(config=config), resolver=public,
                transport=httpx.MockTransport(handler))
    await orgs._deliver("https://hooks.example.com/prism", b'{"a": 1}', "secret")
    [req] = sent
    assert req.url.host == "93.184.216.34" and req.headers["host"] == "hooks.example.com"
    assert req.headers["x-prism-signature"].startswith("sha256=")
