"""Customer routes: own-account isolation, quota and balance shapes, usage filters,
summary, CSV export (RFC 4180) and key management."""
from __future__ import annotations

import csv
import io

import httpx
import pytest

import harness
import store

PLANS = [{"id": "pro", "window_5h_usd": 5.0, "window_7d_usd": 40.0},
         {"id": "daily", "daily_usd": 2.0, "daily_reset_hour": 6}]
DAY0 = 1_735_689_600.0   # 2025-01-01T00:00:00Z


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    gateway = harness.start_gateway(tmp_path_factory.mktemp("acct"), sim_url, plans=PLANS)
    yield gateway
    gateway.stop()


def client(gw, key):
    return httpx.Client(base_url=gw.url, timeout=30,
                        headers={"authorization": f"Bearer {key['key']}"})


def log_rows(gw, account_id, rows):
    """Request-log rows written straight into the store, as past traffic."""
    db = gw.db()
    try:
        for i, row in enumerate(rows):
            store.insert_request_log(db, **{
                "request_id": f"req_{account_id[-6:]}_{i}", "account_id": account_id,
                "route": "/v1/chat/completions", "dialect": "openai", "status": 200,
                "model": "prism-mini", "tokens_in": 10, "tokens_out": 20,
                "cost_micros": 50, **row})
    finally:
        db.close()


def test_routes_need_a_key(gw):
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        for path in ("/v1/account/quota", "/v1/balance", "/v1/usage", "/v1/keys"):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_api_key"


def test_quota_without_a_plan_is_null_with_the_wallet(gw):
    key = gw.create_key(credits_usd=2.5)
    with client(gw, key) as c:
        q = c.get("/v1/account/quota").json()
        assert (q["plan"], q["windows"], q["daily"]) == (None, None, None)
        assert q["wallet"]["balance_usd"] == 2.5 and q["balance_usd"] == 2.5
        b = c.get("/v1/balance").json()
    assert b["balance_micros"] == 2_500_000 and b["available_usd"] == 2.5
    assert (b["tier"], b["plan"], b["auto_topup"], b["held_usd"]) == ("payg", None, False, 0.0)


def test_quota_with_rolling_and_daily_plans(gw):
    key = gw.create_key(credits_usd=1.0, plan="pro")
    with client(gw, key) as c:
        r = c.post("/v1/chat/completions", json={
            "model": "prism-mini", "messages": [{"role": "user", "content": "say: hi"}]})
        assert r.status_code == 200
        cost = int(r.headers["x-prism-cost"].replace(".", ""))
        q = c.get("/v1/account/quota").json()
    assert q["plan"]["id"] == "pro" and q["daily"] is None
    w5 = q["windows"]["5h"]
    assert (w5["limit_usd"], w5["used_micros"], w5["remaining_micros"]) == (5.0, cost, 5_000_000 - cost)
    assert w5["resets_at"].endswith("Z") and q["windows"]["7d"]["limit_usd"] == 40.0
    assert q["wallet"]["balance_usd"] == 1.0
    daily = gw.create_key(credits_usd=0, plan="daily")
    with client(gw, daily) as c:
        q = c.get("/v1/account/quota").json()
    assert q["windows"] is None and q["daily"]["limit_usd"] == 2.0
    assert q["daily"]["resets_at"].endswith("T06:00:00Z") and q["daily"]["used_usd"] == 0.0


def test_usage_is_the_callers_only_with_filters_and_paging(gw):
    mine, theirs = gw.create_key(credits_usd=1), gw.create_key(credits_usd=1)
    log_rows(gw, mine["account_id"], [
        {"created_at": DAY0 + 10, "mode": "eco"},
        {"created_at": DAY0 + 20, "mode": "sport", "model": "prism-big", "cost_micros": 900},
        {"created_at": DAY0 + 86400 + 5, "mode": "eco"},
        {"created_at": DAY0 + 2 * 86400, "mode": None}])
    log_rows(gw, theirs["account_id"], [{"created_at": DAY0 + 15, "mode": "eco"}])
    with client(gw, mine) as c:
        all_rows = c.get("/v1/usage").json()
        assert all_rows["total"] == 4 and len(all_rows["data"]) == 4
        assert {r["request_id"] for r in all_rows["data"]}.isdisjoint({f"req_{theirs['account_id'][-6:]}_0"})
        assert [r["created"] for r in all_rows["data"]] == sorted(
            (r["created"] for r in all_rows["data"]), reverse=True)
        eco = c.get("/v1/usage", params={"mode": "eco"}).json()
        assert eco["total"] == 2 and {r["mode"] for r in eco["data"]} == {"eco"}
        big = c.get("/v1/usage", params={"model": "prism-big"}).json()
        assert [r["cost_usd"] for r in big["data"]] == [0.0009]
        day1 = c.get("/v1/usage", params={"from": "2025-01-01", "to": "2025-01-02T00:00:00Z"}).json()
        assert day1["total"] == 2
        unix = c.get("/v1/usage", params={"from": str(int(DAY0 + 86400)), "to": DAY0 + 86401}).json()
        assert unix["total"] == 0
        page = c.get("/v1/usage", params={"limit": 3, "offset": 2}).json()
        assert (len(page["data"]), page["has_more"]) == (2, False)
        for bad in ({"limit": 1001}, {"limit": 0}, {"from": "yesterday"}, {"offset": -1},
                    {"from": "2025-02-01", "to": "2025-01-01"}):
            r = c.get("/v1/usage", params=bad)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request", bad


def test_summary_by_model_mode_day_and_the_comparison(gw):
    key = gw.create_key(credits_usd=1)
    log_rows(gw, key["account_id"], [
        {"created_at": DAY0 + 1, "mode": "eco", "tokens_in": 1000, "tokens_out": 500,
         "cost_micros": 2000},
        {"created_at": DAY0 + 86400, "mode": "eco", "tokens_in": 1000, "tokens_out": 500,
         "cost_micros": 2000},
        {"created_at": DAY0 + 86401, "mode": "sport", "model": "prism-big", "tokens_in": 0,
         "tokens_out": 0, "cost_micros": 0, "status": 502}])
    with client(gw, key) as c:
        s = c.get("/v1/usage/summary").json()
    assert s["totals"]["requests"] == 3 and s["totals"]["cost_micros"] == 4000
    assert s["totals"]["errors"] == 1
    assert {m["key"]: m["requests"] for m in s["by_model"]} == {"prism-mini": 2, "prism-big": 1}
    assert {m["key"]: m["cost_micros"] for m in s["by_mode"]} == {"eco": 4000, "sport": 0}
    assert [d["key"] for d in s["by_day"]] == ["2025-01-01", "2025-01-02"]
    cmp = s["comparison"]
    # prism-big: $10 / $30 per Mtok -> 2000 * 10 + 1000 * 30 = 50_000 micro-USD
    assert cmp["most_expensive_model"] == "prism-big"
    assert (cmp["would_have_cost_micros"], cmp["actual_cost_micros"]) == (50_000, 4000)
    assert cmp["saved_micros"] == 46_000 and cmp["saved_percent"] == 92.0


def test_csv_export_quotes_per_rfc_4180_and_filters_by_time(gw):
    key = gw.create_key(credits_usd=1)
    nasty = 'bad, "quoted"\r\nsecond line'
    rows = [{"created_at": DAY0 + i, "error_type": nasty if i == 1 else None,
             "cost_micros": 1_234_567} for i in range(1203)]
    log_rows(gw, key["account_id"], rows)
    with client(gw, key) as c:
        r = c.get("/v1/usage/export")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        raw = r.content.decode()
        part = c.get("/v1/usage/export", params={"from": DAY0 + 1000, "to": DAY0 + 1100}).text
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "").replace(nasty, "")
    assert '"bad, ""quoted""\r\nsecond line"' in raw
    parsed = list(csv.reader(io.StringIO(raw, newline="")))
    header, body = parsed[0], parsed[1:]
    assert header[:3] == ["request_id", "created_at", "model"]
    assert len(body) == 1203                       # three pages of 500, streamed
    assert body[1][header.index("error_type")] == nasty
    assert body[0][header.index("cost_usd")] == "1.234567"
    assert body[0][header.index("created_at")] == "2025-01-01T00:00:00Z"
    assert [row[1] for row in body] == sorted(row[1] for row in body)
    assert len(list(csv.reader(io.StringIO(part, newline="")))) == 1 + 100


def test_keys_for_the_own_account_only(gw):
    alice, bob = gw.create_key(credits_usd=1), gw.create_key(credits_usd=1)
    with client(gw, alice) as a, client(gw, bob) as b:
        made = a.post("/v1/keys", json={"name": "ci"})
        assert made.status_code == 201 and made.json()["key"].startswith("sk-prism-")
        second = made.json()
        assert {k["id"] for k in a.get("/v1/keys").json()["data"]} == {alice["id"], second["id"]}
        assert "key" not in a.get("/v1/keys").json()["data"][0]
        # Bob can neither see nor revoke Alice's key: 404, as for a key that does not exist.
        assert second["id"] not in {k["id"] for k in b.get("/v1/keys").json()["data"]}
        r = b.delete(f"/v1/keys/{second['id']}")
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
        assert b.delete("/v1/keys/key_doesnotexist").status_code == 404
        # The new key works, then stops working once revoked.
        with client(gw, second) as n:
            assert n.get("/v1/balance").json()["account_id"] == alice["account_id"]
            assert a.delete(f"/v1/keys/{second['id']}").json()["revoked"] is True
            assert n.get("/v1/balance").status_code == 401
        assert a.delete(f"/v1/keys/{second['id']}").status_code == 404
        assert a.post("/v1/keys", json={"name": ""}).status_code == 400
        assert a.post("/v1/keys").status_code == 201             # the name is optional


def test_request_records_are_private(gw):
    alice, bob = gw.create_key(credits_usd=1), gw.create_key(credits_usd=1)
    with client(gw, alice) as a, client(gw, bob) as b:
        r = a.post("/v1/chat/completions", json={
            "model": "prism-mini", "messages": [{"role": "user", "content": "say: hi"}]})
        rid = r.headers["x-request-id"]
        rec = a.get(f"/v1/requests/{rid}").json()
        assert rec["funded_by"] == "wallet" and rec["cost_micros"] > 0
        assert rec["wallet_balance_after_micros"] == 1_000_000 - rec["cost_micros"]
        assert b.get(f"/v1/requests/{rid}").status_code == 404
        assert a.get("/v1/requests/req_nope").status_code == 404
