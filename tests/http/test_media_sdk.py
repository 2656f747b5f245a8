"""POST /v1/images/generations through the official openai SDK: both response formats,
n > 1, capability and flag refusals before any upstream call, per-generation billing."""
from __future__ import annotations

import sys
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "media"))
import media_setup as ms  # noqa: E402


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    gateway = ms.start(tmp_path_factory.mktemp("media"), sim_url)
    yield gateway
    gateway.stop()


def client(gw, key) -> openai.OpenAI:
    return openai.OpenAI(api_key=key["key"], base_url=gw.url + "/v1", max_retries=0)


def test_images_url_and_b64_json_with_n(gw, sim_url):
    key = gw.create_key(credits_usd=5.0)
    c = client(gw, key)
    before = ms.wallet(gw, key["account_id"])
    raw = c.images.with_raw_response.generate(model="img", prompt="a red cube", n=3,
                                              response_format="b64_json", size="512x256")
    resp = raw.parse()
    assert len(resp.data) == 3
    sizes = {ms.png_size(ms.b64png(d.b64_json)) for d in resp.data}
    assert sizes == {(8, 4)}   # 512x256 at the simulator's 1/64 scale
    assert len({d.b64_json for d in resp.data}) == 3
    assert resp.data[0].revised_prompt == "a red cube"
    assert raw.headers["x-prism-model"] == "img"
    assert raw.headers["x-prism-cost"] == ms_usd(3 * ms.IMAGE_USD)
    assert raw.headers["x-request-id"].startswith("req_")
    assert before - ms.wallet(gw, key["account_id"]) == 3 * 40_000

    resp = c.images.generate(model="img", prompt="a blue cube", n=2, response_format="url")
    assert len(resp.data) == 2
    for d in resp.data:
        assert d.url.startswith(sim_url + "/_sim/images/")
        assert ms.png_size(httpx.get(d.url).content) == (16, 16)
    assert before - ms.wallet(gw, key["account_id"]) == 5 * 40_000
    assert ms.invariants(gw) == []


def ms_usd(usd: float) -> str:
    from gateway.billing.pricing import format_usd, usd_to_micros
    return format_usd(usd_to_micros(usd))


def test_deterministic_and_extras_forwarded(gw, sim_url):
    key = gw.create_key()
    c = client(gw, key)
    kw = dict(model="img", prompt="same", response_format="b64_json",
              extra_body={"seed": 42, "aspect_ratio": "16:9", "negative_prompt": "blur",
                          "image_url": ["https://example.com/ref.png"], "quality": "high",
                          "style": "natural"})
    a = c.images.generate(**kw)
    body = ms.sim_stats(sim_url)["last_image_body"]
    b = c.images.generate(**kw)
    assert a.data[0].b64_json == b.data[0].b64_json
    assert ms.png_size(ms.b64png(a.data[0].b64_json)) == (16, 9)
    # The upstream model id replaces the public one; extras are forwarded untouched.
    assert body["model"] == "sim-image-1" and body["seed"] == 42
    assert body["aspect_ratio"] == "16:9" and body["negative_prompt"] == "blur"
    assert body["image_url"] == ["https://example.com/ref.png"] and body["quality"] == "high"


def _refusal(gw, key, body) -> httpx.Response:
    return httpx.post(gw.url + "/v1/images/generations", json=body,
                      headers={"authorization": f"Bearer {key['key']}"})


def test_flag_off_and_missing_capability_refused_before_upstream(gw, sim_url):
    key = gw.create_key()
    httpx.post(sim_url + "/_sim/reset")
    r = _refusal(gw, key, {"model": "img-flagoff", "prompt": "x"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "images_disabled" and "Images flag" in err["message"]
    r = _refusal(gw, key, {"model": "prism-mini", "prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "images_not_supported"
    assert "capability" in r.json()["error"]["message"]
    r = _refusal(gw, key, {"model": "img-claude", "prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_images_route"
    assert ms.sim_stats(sim_url)["image_requests"] == 0
    with pytest.raises(openai.BadRequestError):
        client(gw, key).images.generate(model="img-flagoff", prompt="x")
    assert ms.sim_stats(sim_url)["image_requests"] == 0


def test_operator_flag_flip_takes_effect(gw, sim_url):
    key = gw.create_key()
    r = gw.admin.put("/-/providers/sim-media/flags", json={"images": False})
    assert r.status_code == 200, r.text
    try:
        httpx.post(sim_url + "/_sim/reset")
        r = _refusal(gw, key, {"model": "img", "prompt": "x"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "images_disabled"
        assert ms.sim_stats(sim_url)["image_requests"] == 0
    finally:
        gw.admin.put("/-/providers/sim-media/flags", json={"images": True})


@pytest.mark.parametrize("body,field", [
    ({"prompt": "x"}, "model"),
    ({"model": "img"}, "prompt"),
    ({"model": "img", "prompt": "x", "n": 0}, "n"),
    ({"model": "img", "prompt": "x", "n": 11}, "n"),
    ({"model": "img", "prompt": "x", "n": "2"}, "n"),
    ({"model": "img", "prompt": "x", "response_format": "png"}, "response_format"),
    ({"model": "img", "prompt": "x", "image_url": 5}, "image_url"),
    ({"model": "img", "prompt": "x", "size": "big"}, "size"),
    ({"model": "img", "prompt": "x", "seed": "s"}, "seed"),
])
def test_bad_parameters_are_400(gw, body, field):
    key = gw.create_key()
    r = _refusal(gw, key, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field


def test_price_missing_is_402_and_poor_wallet_is_402(gw, sim_url):
    key = gw.create_key(credits_usd=0.05)
    httpx.post(sim_url + "/_sim/reset")
    r = _refusal(gw, key, {"model": "img-noprice", "prompt": "x"})
    assert r.status_code == 402 and r.json()["error"]["code"] == "price_missing"
    r = _refusal(gw, key, {"model": "img", "prompt": "x", "n": 2})   # $0.08 > $0.05
    assert r.status_code == 402 and r.json()["error"]["type"] == "insufficient_balance"
    assert ms.sim_stats(sim_url)["image_requests"] == 0
    assert ms.wallet(gw, key["account_id"]) == 50_000
    assert ms.invariants(gw) == []


def test_settled_on_images_actually_returned_and_voided_on_failure(gw):
    key = gw.create_key(credits_usd=1.0)
    c = client(gw, key)
    raw = c.images.with_raw_response.generate(model="img", prompt="few [[sim returned=1]]", n=3,
                                              response_format="b64_json")
    assert len(raw.parse().data) == 1
    assert raw.headers["x-prism-cost"] == ms_usd(ms.IMAGE_USD)
    assert ms.wallet(gw, key["account_id"]) == 1_000_000 - 40_000
    with pytest.raises(openai.APIStatusError):
        c.images.generate(model="img", prompt="boom [[sim status=500]]", n=2)
    assert ms.wallet(gw, key["account_id"]) == 1_000_000 - 40_000
    assert ms.invariants(gw) == []
    db = gw.db()
    try:
        import store
        logs = [r for r in store.request_logs(db) if r.account_id == key["account_id"]]
    finally:
        db.close()
    assert sorted(r.status for r in logs) == [200, 502]
    assert {r.route for r in logs} == {"/v1/images/generations"}


def test_inprocess_simulator_makes_images(gw):
    key = gw.create_key()
    resp = client(gw, key).images.generate(model="img-inproc", prompt="p", n=2)
    for d in resp.data:
        assert d.url.startswith("data:image/png;base64,")
        ms.png_size(ms.b64png(d.url.split(",", 1)[1]))


def test_reference_image_to_private_host_refused_by_default(gw, sim_url):
    key = gw.create_key(credits_usd=1.0)
    r = _refusal(gw, key, {"model": "img-inproc", "prompt": "x",
                           "image_url": sim_url + "/_sim/images/none.png"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "image_url_refused" and "loopback" in err["message"]
    r = _refusal(gw, key, {"model": "img-inproc", "prompt": "x",
                           "image_url": "http://169.254.169.254/latest/meta-data/"})
    assert r.status_code == 400 and "metadata" in r.json()["error"]["message"]
    assert ms.wallet(gw, key["account_id"]) == 1_000_000
