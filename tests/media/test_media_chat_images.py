"""Images through a multimodal chat upstream: /v1/images/generations on a model routed to
a Gemini provider (the HTTP simulator speaking generateContent), through the official
openai SDK. The prompt and the fetched reference image go out as chat content with
responseModalities IMAGE; the inline images of the answer come back, billed per image."""
from __future__ import annotations

import base64

import httpx
import openai
import pytest

import harness
import media_setup as ms
from gateway import canonical as c
from gateway.codecs import gemini
from gateway.media import chat_images
from gateway.simulator import core
from gateway.simulator.media import generate_images


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chat-images")
    base = harness.gateway_config(tmp, sim_url, upstream_kinds=("gemini",))
    providers = [dict(p, images=True) if p["id"] == "sim-gemini" else p
                 for p in base["providers"]]
    models = base["models"] + [
        {"id": "img-gemini", "image_usd": ms.IMAGE_USD, "capabilities": ["images"],
         "routes": [{"provider": "sim-gemini", "model": "gemini-image"}]},
    ]
    gateway = harness.start_gateway(tmp, sim_url, providers=providers, models=models,
                                    media={"allow_private_hosts": True})
    yield gateway
    gateway.stop()


def client(gw, key) -> openai.OpenAI:
    return openai.OpenAI(api_key=key["key"], base_url=gw.url + "/v1", max_retries=0)


def _reference(sim_url: str) -> tuple[str, bytes]:
    r = httpx.post(sim_url + "/v1/images/generations", json={"prompt": "ref", "n": 1},
                   headers={"authorization": "Bearer sk-upstream-test"})
    assert r.status_code == 200, r.text
    url = r.json()["data"][0]["url"]
    return url, httpx.get(url).content


def test_b64_json_n2_with_reference_billed_per_image(gw, sim_url):
    key = gw.create_key(credits_usd=5.0)
    before = ms.wallet(gw, key["account_id"])
    ref_url, ref = _reference(sim_url)
    resp = client(gw, key).images.generate(
        model="img-gemini", prompt="a red cube", n=2, response_format="b64_json",
        extra_body={"seed": 7, "image_url": ref_url, "aspect_ratio": "16:9"})
    assert len(resp.data) == 2
    pics = [ms.b64png(d.b64_json) for d in resp.data]
    for pic in pics:
        ms.png_size(pic)   # PNG signature, IHDR and its CRC
    # Exactly what the simulator makes from the chat text, seed + i and the reference bytes.
    text = "a red cube\n\nAspect ratio: 16:9."
    assert pics == [generate_images(text, 1, seed=7 + i, references=(ref,))[0] for i in range(2)]
    assert before - ms.wallet(gw, key["account_id"]) == 2 * 40_000
    assert ms.invariants(gw) == [] and ms.open_holds(gw) == []


def test_url_format_is_a_data_url(gw):
    key = gw.create_key(credits_usd=5.0)
    before = ms.wallet(gw, key["account_id"])
    resp = client(gw, key).images.generate(model="img-gemini", prompt="a blue cube", n=2,
                                           response_format="url")
    assert len(resp.data) == 2
    for d in resp.data:
        head, _, b64 = d.url.partition(",")
        assert head == "data:image/png;base64"
        ms.png_size(base64.b64decode(b64))
    assert before - ms.wallet(gw, key["account_id"]) == 2 * 40_000


def test_upstream_failure_voids_the_hold(gw):
    key = gw.create_key(credits_usd=5.0)
    before = ms.wallet(gw, key["account_id"])
    with pytest.raises(openai.APIStatusError):
        client(gw, key).images.generate(model="img-gemini", prompt="x [[sim status=500]]")
    assert ms.wallet(gw, key["account_id"]) == before
    assert ms.open_holds(gw) == []


# ---------------------------------------------------------------- pure pieces

def test_codec_sends_response_modalities_and_reads_inline_images():
    req = chat_images.chat_request({"model": "m", "prompt": "p", "style": "vivid"},
                                   (b"\x89PNG\r\n\x1a\nxx",), seed=3)
    body = gemini.from_canonical_request(req, "m")
    assert body["generationConfig"] == {"seed": 3, "responseModalities": ["TEXT", "IMAGE"]}
    assert body["contents"] == [{"role": "user", "parts": [
        {"text": "p\n\nStyle: vivid."},
        {"inlineData": {"mimeType": "image/png",
                        "data": base64.b64encode(b"\x89PNG\r\n\x1a\nxx").decode()}}]}]
    # Without the hint nothing changes.
    plain = c.Request(model="m", messages=(c.Message("user", (c.TextPart("hi"),)),))
    assert "generationConfig" not in gemini.from_canonical_request(plain, "m")

    resp = gemini.to_canonical_response({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Here it is"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
            "finishReason": "STOP", "index": 0}],
        "responseId": "r", "modelVersion": "m"})
    assert resp.message.parts == (c.TextPart("Here it is"),
                                  c.ImagePart(data_b64="iVBORw0KGgo=", media_type="image/png"))
    assert chat_images.images_of(resp) == [resp.message.parts[1]]


def test_simulator_answers_the_hint_with_one_png_and_encodes_it_inline():
    req = chat_images.chat_request({"model": "m", "prompt": "cat"}, ())
    resp = core.respond(req)
    [img] = chat_images.images_of(resp)
    assert img.media_type == "image/png"
    assert base64.b64decode(img.data_b64) == generate_images("cat", 1)[0]
    out = gemini.from_canonical_response(resp, "m")
    assert {"inlineData": {"mimeType": "image/png", "data": img.data_b64}} in \
        out["candidates"][0]["content"]["parts"]
    plain = c.Request(model="m", messages=(c.Message("user", (c.TextPart("cat"),)),))
    assert chat_images.images_of(core.respond(plain)) == []
