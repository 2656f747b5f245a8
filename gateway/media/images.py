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
from typing import Any, Callable

from gateway import errors
from gateway.config import MediaConfig, RouteConfig
from gateway.engine.call import CallContext, Outcome
from gateway.engine.jobs import MediaService
from gateway.engine.live import Live
from gateway.engine.operations import Operation, Pricing, Upstream
from gateway.engine.pipeline import Pipeline
from gateway.media import chat_images, fetch
from gateway.media.chat_images import CHAT_IMAGE_KINDS

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


async def references(cfg: MediaConfig, urls: tuple[str, ...]) -> tuple[bytes, ...]:
    got = []
    for url in urls:
        f = await fetch.fetch(url, allow_private=cfg.allow_private_hosts,
                              max_bytes=cfg.fetch_max_bytes, timeout=cfg.fetch_timeout,
                              max_redirects=cfg.fetch_max_redirects)
        got.append(f.content)
    return tuple(got)


class MediaRoutes:
    """Which routes of a model may serve images or video: the capability a media route
    asks the engine for beyond the model's. ``images_on`` / ``video_on`` are the
    operator's per-provider flags (runtime.flags.ProviderFlags)."""

    def __init__(self, live: Live, media: MediaService, *, images_on: Callable[[str], bool],
                 video_on: Callable[[str], bool]) -> None:
        self.live = live
        self.media = media
        self.images_on = images_on
        self.video_on = video_on

    def usable(self, entry: Any, capability: str) -> tuple[RouteConfig, ...]:
        """The routes that may serve `capability` ("images" or "video"), or the 400
        saying why there are none."""
        model = entry.model
        config = self.live.config
        what = "image generation" if capability == "images" else "video generation"
        flag = self.images_on if capability == "images" else self.video_on
        if capability not in model.capabilities:
            raise errors.InvalidRequest(
                f"The model {entry.public_id!r} does not support {what} (it lacks the "
                f"{capability!r} capability)", field="model", code=f"{capability}_not_supported")
        routes = self.live.catalog.routes(model)
        flagged = [r for r in routes if flag(r.provider)]
        if not flagged:
            providers = ", ".join(sorted({r.provider for r in routes}))
            label = "Images" if capability == "images" else "Video"
            raise errors.InvalidRequest(
                f"The model {entry.public_id!r} supports {what}, but its provider(s) "
                f"{providers} do not have the {label} flag on", field="model",
                code=f"{capability}_disabled")
        usable = tuple(r for r in flagged if self.media.client(r.provider) is not None
                       or (capability == "images"
                           and config.provider(r.provider).kind in CHAT_IMAGE_KINDS))
        if not usable:
            kinds = ", ".join(sorted({config.provider(r.provider).kind for r in flagged}))
            raise errors.InvalidRequest(
                f"No route of {entry.public_id!r} can make {what}: provider kind(s) {kinds} "
                f"have no {what} path in Prism", field="model",
                code=f"unsupported_{capability}_route")
        return usable


@dataclass
class ImageCall:
    """One generation on its way through the engine: the request, and the reference
    images' bytes, fetched once, on the first route that takes bytes."""
    req: ImageRequest
    fetch_cfg: MediaConfig
    refs: tuple[bytes, ...] | None = None

    async def reference_bytes(self) -> tuple[bytes, ...]:
        if self.refs is None:
            self.refs = await references(self.fetch_cfg, self.req.image_urls)
        return self.refs


async def _call(up: Upstream, call: ImageCall, route: RouteConfig) -> dict[str, Any]:
    """The provider method for one route: its Images API, or images through chat."""
    req = call.req
    body = upstream_body(req, route.model)
    if up.media is None:
        refs = await call.reference_bytes() if req.image_urls else ()
        result = await chat_images.generate(up.provider, body, refs)
    else:
        refs = (await call.reference_bytes()
                if req.image_urls and up.media.needs_reference_bytes else ())
        result = await up.media.images(body, refs)
    images = _images_of(result, route.provider)[:req.n]
    if not images:
        raise errors.UpstreamProtocolError(f"upstream {route.provider} returned no images")
    created = result.get("created")
    return {"created": created if isinstance(created, int) else int(time.time()),
            "data": images}


IMAGES: Operation[ImageCall, dict] = Operation(
    kind="image", capability="images", pricing=Pricing.units("image_usd", "image"),
    call=_call, hold_units=lambda call: call.req.n, units_of=lambda res: len(res["data"]),
    noun="generate images")


class Images:
    """POST /v1/images/generations on the engine: one unit-priced operation."""

    def __init__(self, pipeline: Pipeline, routes: MediaRoutes, live: Live) -> None:
        self.pipeline = pipeline
        self.routes = routes
        self.live = live     # the media fetch limits, read per request (reload swaps them)

    async def generate(self, ctx: CallContext,
                       body: dict[str, Any]) -> tuple[dict[str, Any], Outcome]:
        req = parse(body)
        return await self.pipeline.unary(
            ctx, IMAGES, ImageCall(req, self.live.config.media), model=req.model,
            routes=lambda selection: self.routes.usable(selection.entry, "images"))
