"""Signed result webhooks for async and scheduled jobs (``callback_url``).

A job that ends with a callback_url is marked webhook pending in the same write that
ends it, so delivery survives a restart. The deliverer POSTs the job object as JSON:

    X-Prism-Webhook-Timestamp: <unix seconds>
    X-Prism-Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

with the account's own secret (GET /v1/webhook_secret). A non-2xx answer or a network
failure is retried with exponential backoff up to jobs.webhook_max_attempts. Every
attempt vets the URL with the SSRF guard of gateway.media.fetch and connects to the
vetted address itself, so a DNS answer cannot swap in an internal host.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any, Awaitable, Callable

import httpx
import trio

import store.jobs as sj
from gateway import errors
from gateway.media import fetch

log = logging.getLogger("prism.jobs.webhooks")

_BACKOFF_MAX = 300.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def check_url(url: Any) -> str:
    """Shape checks at submission (the address itself is vetted at every delivery)."""
    if not isinstance(url, str) or len(url) > 2048 or not url.startswith(("http://", "https://")):
        raise errors.InvalidRequest("callback_url must be an http(s) URL of at most 2048 "
                                    "characters", field="callback_url")
    return url


class Webhooks:
    def __init__(self, writer: Any, config: Callable[[], Any], render: Callable[[sj.Job], Awaitable[dict]],
                 *, clock: Callable[[], float] = time.time,
                 resolver: fetch.Resolver = fetch.system_resolver) -> None:
        self.writer = writer
        self.config = config
        self.render = render          # the job object the client would GET
        self.clock = clock
        self.resolver = resolver

    async def secret(self, account_id: str) -> str:
        return await self.writer.call(sj.webhook_secret, account_id, "whsec_" + secrets.token_hex(24))

    async def vet(self, url: str) -> None:
        await fetch.vet(url, self.resolver, self.config().webhook_allow_private)

    async def run(self, wake: Callable[[], trio.Event]) -> None:
        while True:
            for job in await self.writer.call(sj.due_webhooks, time.time()):
                try:
                    await self.deliver(job)
                except Exception:
                    # One bad delivery must not stop the others; it stays pending.
                    log.exception("webhook for %s", job.id)
                    n = job.webhook_attempts + 1
                    give_up = n >= self.config().webhook_max_attempts
                    await self.writer.call(sj.webhook_done, job.id,
                                           "failed" if give_up else "pending", n,
                                           None if give_up else time.time() + 60)
            with trio.move_on_after(self.config().poll_interval):
                await wake().wait()

    async def deliver(self, job: sj.Job) -> bool:
        cfg = self.config()
        attempt = job.webhook_attempts + 1
        body = json.dumps(await self.render(job), separators=(",", ":")).encode()
        ts = int(time.time())
        headers = {"Content-Type": "application/json", "User-Agent": "Prism-Webhooks/1",
                   "X-Prism-Webhook-Id": job.id, "X-Prism-Webhook-Timestamp": str(ts),
                   "X-Prism-Webhook-Signature": sign(await self.secret(job.account_id), ts, body)}
        ok, why = False, ""
        try:
            with trio.fail_after(cfg.webhook_timeout):
                target, _ip, host = await fetch.vet(job.callback_url, self.resolver,
                                                    cfg.webhook_allow_private)
                headers["Host"] = host if target.port in (None, 80, 443) else f"{host}:{target.port}"
                async with httpx.AsyncClient(follow_redirects=False, trust_env=False,
                                             timeout=None) as client:
                    r = await client.post(target, content=body, headers=headers,
                                          extensions={"sni_hostname": host})
                ok = 200 <= r.status_code < 300
                why = f"HTTP {r.status_code}"
        except errors.PrismError as exc:
            why = exc.message
            attempt = cfg.webhook_max_attempts    # a refused address will not get better
        except (trio.TooSlowError, httpx.HTTPError, OSError) as exc:
            why = type(exc).__name__
        if ok:
            await self.writer.call(sj.webhook_done, job.id, "delivered", attempt, None)
            return True
        if attempt >= cfg.webhook_max_attempts:
            log.warning("webhook for %s failed for good: %s", job.id, why)
            await self.writer.call(sj.webhook_done, job.id, "failed", attempt, None)
            return False
        delay = min(_BACKOFF_MAX, cfg.retry_base_seconds * 2 ** (attempt - 1))
        await self.writer.call(sj.webhook_done, job.id, "pending", attempt, time.time() + delay)
        return False
