"""POST /v1/images/generations: check, hold, generate, settle on what came back.

Order (every refusal before any upstream call):
    parse the body                        -> 400 naming the field
    model -> catalog entry                -> 404 model_not_found
    "images" capability                   -> 400 images_not_supported
    a route whose provider has Images on  -> 400 images_disabled
    a route whose kind can make images    -> 400 unsupported_image_route
    image_usd configured                  -> 402 price_missing
    reference images, if the route takes bytes: fetched under gateway/media/fetch
    hold image_usd x n                    -> 403 / 429 / 402
    upstream, failing over between routes on upstream failure
    settle image_usd x images returned (void when none came back)

Upstream kinds: openai (any OpenAI-compatible server) gets the OpenAI Images body
plus the Prismatic extras (aspect_ratio, seed, negative_prompt, image_url) when the
client sent them; the in-process simulator takes reference images as bytes; gemini
makes images through chat (gateway/media/chat_images.py: the prompt and reference
image bytes become multimodal chat content, the answer's inline images are read back,
one chat call per image). Anthropic cannot generate images: its routes are refused
with unsupported_images_route.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway import errors
from gateway.billing.pricing import usd_to_micros
from gateway.media import fetch, money
from gateway.media.chat_images import chat_image_client
from gateway.media.jobs import media_of
from gateway.pipeline import CallContext, Outcome
from gateway.providers.base import api_key, scrub

if TYPE_CHECKING:
    from gateway.services import Services

RESPONSE_FORMATS = ("url", "b64_json")
MAX_N = 10
MAX_REFERENCES = 4
_TEXT_PARAMS = ("size", "aspect_ratio", "quality", "style", "negative_prompt")


@dataclass(frozen=True)
class ImageRequest:
    model: str
    prompt: str
    n: int = 1
    response_format: str = "url"
    size: str | None = None
    aspect_ratio: str | None = None
    quality: str | None = None
    style: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    image_urls: tuple[str, ...] = ()
    user: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise errors.InvalidRequest("model is required", field="model")
        if not self.prompt:
            raise errors.InvalidRequest("prompt is required", field="prompt")
        if not 1 <= self.n <= MAX_N:
            raise errors.InvalidRequest(f"n must be 1..{MAX_N}", field="n")
        if self.response_format not in RESPONSE_FORMATS:
            raise errors.InvalidRequest("response_format must be url or b64_json",
                                        field="response_format")


def _str(body: dict, name: str, required: bool = False) -> str | None:
    v = body.get(name)
    if v is None:
        if required:
            raise errors.InvalidRequest(f"{name} is required", field=name)
        return None
    if not isinstance(v, str):
        raise errors.InvalidRequest(f"{name} must be a string", field=name)
    if required and not v.strip():
        raise errors.InvalidRequest(f"{name} must not be empty", field=name)
    return v


def parse(body: dict[str, Any]) -> ImageRequest:
    model = _str(body, "model", required=True)
    prompt = _str(body, "prompt", required=True)
    n = body.get("n", 1)
    if n is None:
        n = 1
    if not isinstance(n, int) or isinstance(n, bool):
        raise errors.InvalidRequest("n must be an integer", field="n")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise errors.InvalidRequest("seed must be an integer", field="seed")
    refs = body.get("image_url")
    if refs is None:
        urls: tuple[str, ...] = ()
    elif isinstance(refs, str):
        urls = (refs,)
    elif isinstance(refs, list) and all(isinstance(u, str) for u in refs):
        urls = tuple(refs)
    else:
        raise errors.InvalidRequest("image_url must be a string or an array of strings",
                                    field="image_url")
    if len(urls) > MAX_REFERENCES:
        raise errors.InvalidRequest(f"at most {MAX_REFERENCES} image_url references",
                                    field="image_url")
    size = _str(body, "size")
    if size is not None and size != "auto" and not re.fullmatch(r"\d{1,5}x\d{1,5}", size):
        raise errors.InvalidRequest("size must look like 1024x1024 (or auto)", field="size")
    aspect = _str(body, "aspect_ratio")
    if aspect is not None and not re.fullmatch(r"\d{1,3}:\d{1,3}", aspect):
        raise errors.InvalidRequest("aspect_ratio must look like 16:9", field="aspect_ratio")
    fmt = body.get("response_format") or "url"
    if not isinstance(fmt, str):
        raise errors.InvalidRequest("response_format must be url or b64_json", field="response_format")
    return ImageRequest(model=model, prompt=prompt, n=n, response_format=fmt, size=size,
                        aspect_ratio=aspect, quality=_str(body, "quality"),
                        style=_str(body, "style"),
                        negative_prompt=_str(body, "negative_prompt"), seed=seed,
                        image_urls=urls, user=_str(body, "user"))


def upstream_body(req: ImageRequest, upstream_model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": upstream_model, "prompt": req.prompt, "n": req.n,
                            "response_format": req.response_format}
    for name in _TEXT_PARAMS:
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    if req.seed is not None:
        body["seed"] = req.seed
    if req.image_urls:
        body["image_url"] = list(req.image_urls)
    if req.user is not None:
        body["user"] = req.user
    return body


def _images_of(result: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    data = result.get("data")
    if not isinstance(data, list):
        raise errors.UpstreamProtocolError(f"upstream {provider} sent no image data")
    out = []
    for item in data:
        if not isinstance(item, dict):
            continue
        kept = {k: item[k] for k in ("url", "b64_json", "revised_prompt")
                if isinstance(item.get(k), str)}
        if "url" in kept or "b64_json" in kept:
            out.append(kept)
    return out


async def references(s: "Services", urls: tuple[str, ...]) -> tuple[bytes, ...]:
    cfg = s.config.media
    got = []
    for url in urls:
        f = await fetch.fetch(url, allow_private=cfg.allow_private_hosts,
                              max_bytes=cfg.fetch_max_bytes, timeout=cfg.fetch_timeout,
                              max_redirects=cfg.fetch_max_redirects)
        got.append(f.content)
    return tuple(got)


def usable_routes(s: "Services", entry: Any, capability: str) -> list[tuple[Any, Any]]:
    """(route, media client) pairs that may serve `capability` ("images" or "video"),
    or the 400 saying why there are none."""
    model = entry.model
    what = "image generation" if capability == "images" else "video generation"
    flag = s.flags.images if capability == "images" else s.flags.video
    if capability not in model.capabilities:
        raise errors.InvalidRequest(
            f"The model {entry.public_id!r} does not support {what} (it lacks the "
            f"{capability!r} capability)", field="model", code=f"{capability}_not_supported")
    routes = s.catalog.routes(model)
    flagged = [r for r in routes if flag(r.provider)]
    if not flagged:
        providers = ", ".join(sorted({r.provider for r in routes}))
        label = "Images" if capability == "images" else "Video"
        raise errors.InvalidRequest(
            f"The model {entry.public_id!r} supports {what}, but its provider(s) {providers} "
            f"do not have the {label} flag on", field="model", code=f"{capability}_disabled")
    media = media_of(s)
    usable = [(r, media.client(r.provider) or (chat_image_client(s, r.provider)
                                               if capability == "images" else None))
              for r in flagged]
    usable = [(r, c) for r, c in usable if c is not None]
    if not usable:
        kinds = ", ".join(sorted({s.config.provider(r.provider).kind for r in flagged}))
        raise errors.InvalidRequest(
            f"No route of {entry.public_id!r} can make {what}: provider kind(s) {kinds} "
            f"have no {what} path in Prism", field="model", code=f"unsupported_{capability}_route")
    return usable


async def generate(s: "Services", ctx: CallContext,
                   body: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
    req = parse(body)
    ctx.model = req.model
    entry = s.catalog.resolve(req.model)
    if ctx.allowed_models is not None and entry.model.id not in ctx.allowed_models:
        raise errors.PlanRestricted(f"The model {entry.public_id!r} is not included in your plan",
                                    code="model_not_allowed")
    usable = usable_routes(s, entry, "images")
    if entry.model.image_usd is None:
        raise errors.PriceMissing(
            f"The model {entry.public_id!r} has no image_usd price configured; the gateway "
            f"refuses to generate images unbilled", code="price_missing")
    unit = usd_to_micros(entry.model.image_usd)
    refs: tuple[bytes, ...] = ()
    if req.image_urls and any(c.needs_reference_bytes for _, c in usable):
        refs = await references(s, req.image_urls)
    held = await money.hold(s, ctx, entry.model.id, unit * req.n)
    route = usable[0][0]
    images: list[dict[str, Any]] = []
    error: BaseException | None = None
    try:
        for i, (route, client) in enumerate(usable):
            try:
                result = await client.images(upstream_body(req, route.model),
                                             refs if client.needs_reference_bytes else ())
            except (errors.UpstreamError, errors.RateLimited):
                if i + 1 < len(usable):
                    continue
                raise
            images = _images_of(result, route.provider)[:req.n]
            break
        if not images:
            raise errors.UpstreamProtocolError(f"upstream {route.provider} returned no images")
    except BaseException as exc:
        error = exc
        if isinstance(exc, errors.PrismError):
            scrub(exc, route.provider, (api_key(s.config.provider(route.provider)),),
                  ctx.request_id)
        raise
    finally:
        cost = unit * len(images) if error is None and images else None
        log = money.log_record(ctx, model=entry.model.id, provider=route.provider,
                               upstream_model=route.model, error=error, cost=cost or 0)
        ctx.logged = True
        charged = await money.close(s, held, cost, log, ctx.account_id, error)
    created = result.get("created")
    payload = {"created": created if isinstance(created, int) else int(time.time()),
               "data": images}
    return payload, Outcome(entry.model.id, charged, 0, 0, headers=held.headers)
