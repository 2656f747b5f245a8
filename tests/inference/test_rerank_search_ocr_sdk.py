"""Rerank (cohere ClientV2), web search (HTTP, the LiteLLM/Perplexity shape) and OCR
(mistralai) against a running gateway, through every upstream kind that serves each,
money exact to the micro-dollar, refusals before any upstream call, failover."""
from __future__ import annotations

import base64
from urllib.parse import quote

import cohere
import httpx
import pytest
from mistralai.client import Mistral

from tests.inference import setup
from tests.inference.documents import page_png, pdf

DOCS = ["The weather in Paris is mild in spring.", "Solar panels convert sunlight into power.",
        "Panel discussions are held every Friday.", "Sunlight and solar panels cut power bills."]


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    g = setup.start(tmp_path_factory.mktemp("inf-rso"), sim_url, inference={"max_documents": 50})
    yield g
    g.stop()


@pytest.fixture
def key(gw):
    return gw.create_key(credits_usd=5.0)


def _stats(sim_url) -> dict:
    return httpx.get(sim_url + "/_sim/stats").json()["inference"]


def _post(gw, key, path, body):
    return httpx.post(gw.url + path, headers={"authorization": f"Bearer {key['key']}"}, json=body, timeout=30)


@pytest.mark.parametrize("model", ["rr-cohere", "rr-inproc"])
def test_cohere_client_rerank(gw, key, model):
    co = cohere.ClientV2(api_key=key["key"], base_url=gw.url)
    before = setup.wallet(gw, key["account_id"])
    res = co.rerank(model=model, query="solar panels sunlight power", documents=DOCS, top_n=3)
    # Documents 1 and 3 hold every query word (the shorter ranks first), 2 holds one.
    assert [r.index for r in res.results] == [1, 3, 2]
    scores = [r.relevance_score for r in res.results]
    assert scores == sorted(scores, reverse=True)
    assert res.meta.billed_units.search_units == 1
    assert before - setup.wallet(gw, key["account_id"]) == 2000          # one search
    assert setup.last_log(gw, key["account_id"]).cost_micros == 2000
    setup.money_ok(gw)


def test_rerank_documents_as_objects_and_search_units(gw, key):
    before = setup.wallet(gw, key["account_id"])
    docs = [{"text": d} for d in DOCS] * 26                              # 104 documents: 2 searches
    r = _post(gw, key, "/v1/rerank", {"model": "rr-cohere", "query": "solar", "documents": docs[:50],
                                      "return_documents": True, "top_n": 2})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["document"] == {"text": DOCS[1]}
    assert before - setup.wallet(gw, key["account_id"]) == 2000
    r = _post(gw, key, "/v1/rerank", {"model": "rr-cohere", "query": "solar", "documents": docs})
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_documents"


def test_rerank_failover_and_refusals(gw, key, sim_url):
    ok = _post(gw, key, "/v1/rerank", {"model": "rr-failover", "query": "solar", "documents": DOCS})
    assert ok.status_code == 200 and ok.headers["x-prism-failover"] == "true"
    before, calls = setup.wallet(gw, key["account_id"]), _stats(sim_url)
    for model, status in (("rr-noprice", 402), ("emb-openai", 400), ("tts-openai", 400)):
        r = _post(gw, key, "/v1/rerank", {"model": model, "query": "q", "documents": DOCS})
        assert r.status_code == status, r.text
    assert _post(gw, key, "/v1/rerank", {"model": "rr-cohere", "query": "", "documents": DOCS}).status_code == 400
    assert setup.wallet(gw, key["account_id"]) == before and _stats(sim_url) == calls


@pytest.mark.parametrize("model", ["search-searxng", "search-tavily", "search-inproc"])
def test_web_search(gw, key, model):
    before = setup.wallet(gw, key["account_id"])
    r = _post(gw, key, "/v1/search", {"model": model, "query": "fusion energy breakthrough", "max_results": 4,
                                      "search_domain_filter": ["science.org"], "country": "us"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "search" and len(body["results"]) == 4
    for hit in body["results"]:
        assert set(hit) == {"title", "url", "snippet", "date"}
        assert "science.org" in hit["url"] and "fusion" in hit["snippet"]
    assert before - setup.wallet(gw, key["account_id"]) == 5000         # one request
    many = _post(gw, key, "/v1/search", {"model": model, "query": ["rust async", "trio nursery"], "max_results": 2})
    assert len(many.json()["results"]) == 4
    assert before - setup.wallet(gw, key["account_id"]) == 10000
    setup.money_ok(gw)


def test_search_failover_default_model_and_refusals(gw, key, sim_url):
    r = _post(gw, key, "/v1/search", {"model": "search-failover", "query": "gateways"})
    assert r.status_code == 200 and r.headers["x-prism-failover"] == "true"
    assert _post(gw, key, "/v1/search", {"query": "no model named"}).status_code == 200
    before, calls = setup.wallet(gw, key["account_id"]), _stats(sim_url)
    for body, status in (({"model": "search-noprice", "query": "x"}, 402), ({"model": "search-tavily"}, 400),
                         ({"model": "search-tavily", "query": "x", "max_results": 99}, 400),
                         ({"model": "rr-cohere", "query": "x"}, 400)):
        assert _post(gw, key, "/v1/search", body).status_code == status
    assert setup.wallet(gw, key["account_id"]) == before and _stats(sim_url) == calls


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


PAGES = [("Chapter one: a text layer.", False), ("Chapter two was scanned.", True), ("Appendix, typed.", False)]


@pytest.mark.parametrize("model", ["ocr-mistral", "ocr-vision", "ocr-claude", "ocr-inproc"])
def test_mistral_sdk_ocr(gw, key, model):
    client = Mistral(api_key=key["key"], server_url=gw.url)
    before = setup.wallet(gw, key["account_id"])
    res = client.ocr.process(model=model, document={"type": "document_url",
                                                   "document_url": _data_url(pdf(PAGES), "application/pdf")})
    assert [p.markdown for p in res.pages] == [t for t, _ in PAGES]
    assert [p.index for p in res.pages] == [0, 1, 2] and res.usage_info.pages_processed == 3
    assert before - setup.wallet(gw, key["account_id"]) == 3000         # three pages
    some = client.ocr.process(model=model, pages=[1], document={
        "type": "document_url", "document_url": _data_url(pdf(PAGES), "application/pdf")})
    assert [p.markdown for p in some.pages] == ["Chapter two was scanned."]
    img = client.ocr.process(model=model, document={"type": "image_url",
                                                   "image_url": _data_url(page_png("Total due: 42 EUR"), "image/png")})
    assert img.pages[0].markdown == "Total due: 42 EUR"
    assert before - setup.wallet(gw, key["account_id"]) == 5000
    assert setup.last_log(gw, key["account_id"]).cost_micros == 1000
    setup.money_ok(gw)


def test_ocr_failover_and_refusals(gw, key, sim_url):
    doc = {"type": "document_url", "document_url": _data_url(pdf(PAGES[:1]), "application/pdf")}
    ok = _post(gw, key, "/v1/ocr", {"model": "ocr-failover", "document": doc})
    assert ok.status_code == 200 and ok.headers["x-prism-failover"] == "true"
    before, calls = setup.wallet(gw, key["account_id"]), _stats(sim_url)
    private = {"type": "image_url", "image_url": sim_url + "/_sim/page.png?text=x"}
    for body, status in (({"model": "ocr-noprice", "document": doc}, 402),
                         ({"model": "emb-openai", "document": doc}, 400),
                         ({"model": "ocr-mistral", "document": doc, "pages": [7]}, 400),
                         ({"model": "ocr-mistral", "document": {"type": "document_url",
                                                                "document_url": "data:application/pdf;base64,JVBERi0xLjQK"}}, 400),
                         ({"model": "ocr-mistral", "document": private}, 400)):    # SSRF guard
        r = _post(gw, key, "/v1/ocr", body)
        assert r.status_code == status, r.text
    assert setup.wallet(gw, key["account_id"]) == before and _stats(sim_url) == calls


def test_ocr_fetches_urls_through_the_guard(sim_url, tmp_path):
    gw = setup.start(tmp_path, sim_url, media={"allow_private_hosts": True})
    try:
        key = gw.create_key(credits_usd=1.0)
        url = sim_url + "/_sim/page.png?text=" + quote("Fetched by the gateway")
        r = _post(gw, key, "/v1/ocr", {"model": "ocr-vision", "document": {"type": "image_url", "image_url": url}})
        assert r.status_code == 200, r.text
        assert r.json()["pages"][0]["markdown"] == "Fetched by the gateway"
    finally:
        gw.stop()


def test_rerank_priced_per_token(gw, key):
    from gateway import tokenizer
    co = cohere.ClientV2(api_key=key["key"], base_url=gw.url)
    before = setup.wallet(gw, key["account_id"])
    res = co.rerank(model="rr-tokens", query="solar power", documents=DOCS[:2])
    assert [r.index for r in res.results] == [1, 0]
    tokens = sum(tokenizer.count_text("solar power") + tokenizer.count_text(d) for d in DOCS[:2])
    assert before - setup.wallet(gw, key["account_id"]) == tokens      # 1 micro-USD a token
    assert setup.last_log(gw, key["account_id"]).tokens_in == tokens
