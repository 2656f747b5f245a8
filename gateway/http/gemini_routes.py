"""Gemini-dialect routes: POST /v1/models/{model}:generateContent, :streamGenerateContent
and :countTokens, and the same under /v1beta. Decode, check the route, dispatch, encode.

One rule per version prefix catches ``{model}:{method}``; the method is split off here
because Quart's converters cannot match a colon suffix. The GET rules on the same paths
(models_routes.py) are separate rules for another method, so the two coexist.

Keys arrive as Bearer, ``x-api-key``, ``x-goog-api-key`` or ``?key=`` (Google's SDKs use
the header, curl examples the query). Once the pipeline has selected the model and its
routes, and before any hold or upstream call, the routes are narrowed to those whose
upstream can serve the request (the `routes` check the route hands the engine -> codecs.gemini.usable_routes):
Gemini-only features with no Gemini route fail with unsupported_gemini_feature, and
never fail over to an upstream that would drop them.

Streams are ``data: {GenerateContentResponse}`` events; the last carries finishReason
and usageMetadata. Unlike the OpenAI routes there is no ``: prism cost=...`` comment
after it: google-genai reads every non-``data:`` line as JSON and fails on a comment.
The bill is in the X-Prism headers of non-streamed calls and in the request log.
"""
from __future__ import annotations

from quart import Blueprint, Response, g, request

from gateway import canonical as c
from gateway import errors, tokenizer
from gateway.codecs import gemini, gemini_stream
from gateway.http import common, framing
from gateway.routing.select import AUTO_MODELS

bp = Blueprint("gemini", __name__)

_KEY_HEADERS = ("x-api-key", "x-goog-api-key")
_METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def _target(version: str, target: str) -> tuple[str, str]:
    model, sep, method = target.rpartition(":")
    if not sep or not model or method not in _METHODS:
        raise errors.NotFound(f"No route for POST /{version}/models/{target}; the methods are "
                              f"{', '.join(_METHODS)}")
    return model.removeprefix("models/"), method


def _route_check(req: c.Request):
    """Keeps the pipeline's selected routes to those whose upstream can serve ``req``;
    runs after model selection (any/auto, pins, plans) and before any hold is taken."""
    providers = common.services().providers

    def kind_of(route) -> str | None:
        provider = providers.get(route.provider)
        return provider.config.kind if provider is not None else None

    return lambda selection: gemini.usable_routes(req, selection.routes, kind_of)


@bp.post("/v1/models/<path:target>")
@bp.post("/v1beta/models/<path:target>")
async def model_method(target: str):
    g.dialect = "gemini"
    version = request.path.split("/", 2)[1]
    model, method = _target(version, target)
    if method == "countTokens":
        return await _count_tokens(model)
    ctx = await common.authenticate(f"/{version}/models/{{model}}:{method}", "gemini",
                                    *_KEY_HEADERS, query_param="key")
    ctx.model = model
    body = await common.read_json_object()
    stream = method == "streamGenerateContent"
    req = gemini.to_canonical_request(body, model=model, stream=stream)
    routes = _route_check(req)
    pipeline = common.services().pipeline
    if not stream:
        resp, outcome = await pipeline.complete(ctx, req, routes=routes)
        payload = gemini.from_canonical_response(resp, outcome.model)
        if not payload["responseId"]:
            payload["responseId"] = ctx.request_id
        return Response(common.dumps(payload), content_type="application/json",
                        headers=common.outcome_headers(outcome, outcome.model))

    st = await pipeline.open_stream(ctx, req, routes=routes)
    encoder = gemini_stream.StreamEncoder(id=ctx.request_id, model=st.prep.entry.model.id)
    return framing.relay(st, framing.GeminiFramer(encoder))


async def _count_tokens(model: str):
    """An estimate with the gateway's own tokenizer (what reservations use), not the
    upstream's count; nothing is billed or logged."""
    await common.authenticate(request.path, "gemini", *_KEY_HEADERS, query_param="key", log=False)
    body = await common.read_json_object()
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if inner is not None:
        if not isinstance(inner, dict):
            raise errors.InvalidRequest("generateContentRequest must be an object",
                                        field="generateContentRequest")
        body = inner
    req = gemini.to_canonical_request(body, model=model, stream=False)
    if model not in AUTO_MODELS:
        common.services().catalog.resolve(model)   # an unknown model is a 404 here too
    return {"totalTokens": tokenizer.count_request(req)}
