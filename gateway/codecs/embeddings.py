"""Embeddings in the OpenAI and Gemini wire formats, both sides of each (pure).

Client side (what Prism serves):
    openai_to_canonical(body)            POST /v1/embeddings
    openai_from_canonical(res, model, encoding_format)
    gemini_to_canonical(model, body, batch)   models/{m}:embedContent / :batchEmbedContents
    gemini_from_canonical(res, batch)
Upstream side (what Prism calls):
    openai_upstream_body(req, model) / openai_upstream_result(data)
    gemini_upstream_body(req, model) / gemini_upstream_result(data, input_tokens)

base64 is little-endian float32, as OpenAI sends it and its SDK decodes it.
"""
from __future__ import annotations

import base64
import struct

from gateway import canonical_ops as o
from gateway import errors
from gateway.codecs.fields import bad, body_with_model, is_int, opt_positive_int, opt_str

MAX_INPUTS = 2048
MAX_DIMENSIONS = 8192


def _input_item(v: object, where: str) -> str | tuple[int, ...]:
    if isinstance(v, str):
        if not v:
            bad(where, "must not be an empty string")
        return v
    if isinstance(v, list) and v and all(is_int(t) and 0 <= t < 1 << 31 for t in v):
        return tuple(v)
    bad(where, "must be a non-empty string or a non-empty array of token ids")


def openai_to_canonical(body: object) -> o.EmbedRequest:
    body, model = body_with_model(body)
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(is_int(t) for t in raw)):
        inputs = (_input_item(raw, "input"),)
    elif isinstance(raw, list) and raw:
        if len(raw) > MAX_INPUTS:
            bad("input", f"holds {len(raw)} items; at most {MAX_INPUTS} are allowed")
        inputs = tuple(_input_item(v, f"input[{i}]") for i, v in enumerate(raw))
    else:
        bad("input", "is required: a string, an array of strings, or token arrays")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        bad("encoding_format", "must be 'float' or 'base64'")
    dims = opt_positive_int(body, "dimensions")
    if dims is not None and dims > MAX_DIMENSIONS:
        bad("dimensions", f"must be at most {MAX_DIMENSIONS}")
    return o.EmbedRequest(model=model, inputs=inputs, dimensions=dims, user=opt_str(body, "user"))


def encoding_format(body: dict) -> str:
    return "base64" if body.get("encoding_format") == "base64" else "float"


def _b64(vec: tuple[float, ...]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()


def openai_from_canonical(res: o.EmbedResult, model: str, fmt: str = "float") -> dict:
    data = [{"object": "embedding", "index": i,
             "embedding": _b64(v) if fmt == "base64" else list(v)}
            for i, v in enumerate(res.vectors)]
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": res.input_tokens, "total_tokens": res.input_tokens}}


# ---------------------------------------------------------------- Gemini, client side

def _gemini_text(content: object, where: str) -> str:
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list) or not content["parts"]:
        bad(where, "must be a Content object with parts")
    texts = []
    for i, p in enumerate(content["parts"]):
        if not isinstance(p, dict) or not isinstance(p.get("text"), str):
            raise errors.UnsupportedGeminiFeature(
                f"{where}.parts[{i}]: only text parts can be embedded here", field=where)
        texts.append(p["text"])
    text = " ".join(texts)
    if not text:
        bad(where, "has no text to embed")
    return text


def _gemini_one(d: object, where: str) -> tuple[str, int | None, str | None]:
    if not isinstance(d, dict):
        bad(where, "must be an object")
    dims = d.get("outputDimensionality", d.get("output_dimensionality"))
    if dims is not None and (not is_int(dims) or not 0 < dims <= MAX_DIMENSIONS):
        bad(f"{where}.outputDimensionality", f"must be an integer from 1 to {MAX_DIMENSIONS}")
    task = d.get("taskType", d.get("task_type"))
    if task is not None and not isinstance(task, str):
        bad(f"{where}.taskType", "must be a string")
    return _gemini_text(d.get("content"), f"{where}.content"), dims, task


def gemini_to_canonical(model: str, body: object, batch: bool) -> o.EmbedRequest:
    if not isinstance(body, dict):
        bad("body", "must be a JSON object")
    if not batch:
        text, dims, task = _gemini_one(body, "")
        return o.EmbedRequest(model=model, inputs=(text,), dimensions=dims, task=task)
    reqs = body.get("requests")
    if not isinstance(reqs, list) or not reqs:
        bad("requests", "must be a non-empty array of EmbedContentRequest")
    if len(reqs) > MAX_INPUTS:
        bad("requests", f"holds {len(reqs)} items; at most {MAX_INPUTS} are allowed")
    items = [_gemini_one(r, f"requests[{i}]") for i, r in enumerate(reqs)]
    if len({(d, t) for _, d, t in items}) > 1:
        bad("requests", "must all use the same outputDimensionality and taskType")
    return o.EmbedRequest(model=model, inputs=tuple(t for t, _, _ in items),
                          dimensions=items[0][1], task=items[0][2])


def gemini_from_canonical(res: o.EmbedResult, batch: bool) -> dict:
    embs = [{"values": list(v)} for v in res.vectors]
    return {"embeddings": embs} if batch else {"embedding": embs[0]}


# ---------------------------------------------------------------- upstream side

def openai_upstream_body(req: o.EmbedRequest, model: str) -> dict:
    # base64 both ways: a quarter of the bytes of JSON floats and no float parsing,
    # which dominated the gateway's added latency on large batches.
    body: dict = {"model": model, "input": [x if isinstance(x, str) else list(x) for x in req.inputs],
                  "encoding_format": "base64"}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    return body


def _vector(v: object, where: str) -> tuple[float, ...]:
    if isinstance(v, str):   # an upstream that answered base64 anyway
        try:
            raw = base64.b64decode(v, validate=True)
        except ValueError:
            raise errors.UpstreamProtocolError(f"{where} is not base64") from None
        if len(raw) % 4:
            raise errors.UpstreamProtocolError(f"{where} is not float32 data")
        return struct.unpack(f"<{len(raw) // 4}f", raw)
    if isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return tuple(float(x) for x in v)
    raise errors.UpstreamProtocolError(f"{where} is not a vector")


def openai_upstream_result(data: object, n: int) -> o.EmbedResult:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != n:
        raise errors.UpstreamProtocolError(f"upstream embeddings answer does not hold {n} vectors")
    ordered = sorted(items, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
    vecs = tuple(_vector(d.get("embedding") if isinstance(d, dict) else None, f"data[{i}]")
                 for i, d in enumerate(ordered))
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens = usage.get("prompt_tokens", 0)
    return o.EmbedResult(vectors=vecs, input_tokens=tokens if is_int(tokens) and tokens >= 0 else 0,
                         model=str(data.get("model", "")))


def gemini_upstream_body(req: o.EmbedRequest, model: str, texts: tuple[str, ...]) -> dict:
    name = "models/" + model.removeprefix("models/")
    reqs = []
    for t in texts:
        r: dict = {"model": name, "content": {"parts": [{"text": t}]}}
        if req.dimensions is not None:
            r["outputDimensionality"] = req.dimensions
        if req.task:
            r["taskType"] = req.task
        reqs.append(r)
    return {"requests": reqs}


def gemini_upstream_result(data: object, n: int, input_tokens: int) -> o.EmbedResult:
    """Gemini's embed answers carry no usage: the caller counts the input itself."""
    embs = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(embs, list) or len(embs) != n:
        raise errors.UpstreamProtocolError(f"upstream batchEmbedContents does not hold {n} vectors")
    vecs = tuple(_vector(e.get("values") if isinstance(e, dict) else None, f"embeddings[{i}]")
                 for i, e in enumerate(embs))
    return o.EmbedResult(vectors=vecs, input_tokens=input_tokens)
