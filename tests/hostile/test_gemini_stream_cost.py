"""Where a Gemini stream's client finds its final cost (the README says it): the
google-genai SDK cannot parse the `: prism cost=` SSE comment other dialects get, so
the chunks' responseId is the request id, and GET /v1/requests/{responseId} with the
same x-goog-api-key answers the settled cost."""
from __future__ import annotations

import httpx
from google import genai
from google.genai import types


def test_gemini_stream_cost_is_at_v1_requests_response_id(gateway):
    key = gateway.create_key(credits_usd=5.0)
    client = genai.Client(api_key=key["key"],
                          http_options=types.HttpOptions(base_url=gateway.url,
                                                         api_version="v1beta"))
    chunks = list(client.models.generate_content_stream(model="prism-mini",
                                                        contents="Tell me something"))
    ids = {c.response_id for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("req_")
    rid = ids.pop()
    r = httpx.get(f"{gateway.url}/v1/requests/{rid}", headers={"x-goog-api-key": key["key"]})
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["request_id"] == rid and rec["stream"] in (True, 1)
    assert float(rec["cost_usd"]) > 0 and rec["tokens_out"] > 0
    balance = httpx.get(f"{gateway.url}/v1/balance",
                        headers={"x-goog-api-key": key["key"]}).json()
    assert abs(5.0 - float(rec["cost_usd"]) - float(balance["balance_usd"])) < 1e-6, balance
