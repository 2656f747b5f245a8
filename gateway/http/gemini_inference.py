"""Gemini-dialect inference methods, reached through gemini_routes' one
``models/{model}:{method}`` rule: embedContent and batchEmbedContents (an embeddings
operation on the engine, like /v1/embeddings) and countTokens (free: the upstream's
exact counter where a route has one, else the local tokenizer)."""
from __future__ import annotations

from quart import Response

from gateway import errors
from gateway.codecs import embeddings, gemini
from gateway.http import common
from gateway.http.inference_routes import embed_tokens, exact_count, run
from gateway.inference import operations as ops
from gateway.inference.operations import Call
from gateway.providers.inference import local_count
from gateway.routing.select import AUTO_MODELS

KEY_HEADERS = ("x-api-key", "x-goog-api-key")
METHODS = ("embedContent", "batchEmbedContents")


async def embed(version: str, model: str, method: str) -> Response:
    ctx = await common.authenticate(f"/{version}/models/{{model}}:{method}", "gemini",
                                    *KEY_HEADERS, query_param="key")
    ctx.model = model
    req = embeddings.gemini_to_canonical(model, await common.read_json_object(), method == "batchEmbedContents")
    call = Call("embeddings", req, common.services().inference, units=embed_tokens(req))
    done, outcome = await run(ctx, ops.EMBEDDINGS, call, model, "embeddings")
    headers = common.outcome_headers(outcome, outcome.model)
    return Response(common.dumps(embeddings.gemini_from_canonical(done.value, method == "batchEmbedContents")),
                    content_type="application/json", headers=headers)


async def count_tokens(path: str, model: str) -> dict:
    await common.authenticate(path, "gemini", *KEY_HEADERS, query_param="key", log=False)
    body = await common.read_json_object()
    inner = body.get("generateContentRequest", body.get("generate_content_request"))
    if inner is not None:
        if not isinstance(inner, dict):
            raise errors.InvalidRequest("generateContentRequest must be an object",
                                        field="generateContentRequest")
        body = inner
    req = gemini.to_canonical_request(body, model=model, stream=False)
    if model in AUTO_MODELS:
        return {"totalTokens": local_count(req).input_tokens}
    s = common.services()
    entry = s.catalog.resolve(model)   # an unknown model is a 404 here too
    result = await exact_count(s, entry, req)
    return {"totalTokens": result.input_tokens, "exact": result.exact}
