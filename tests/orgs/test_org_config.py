"""Org configs over the admin API: validated like prism.toml with errors naming the
field, bulk updates all or nothing, restrictions on models and modes, and the health
of the routes an org uses."""
from __future__ import annotations

import httpx

from org_helpers import member, put_org

CHAT = {"model": "prism-mini", "max_tokens": 20,
        "messages": [{"role": "user", "content": "say: hi"}]}


def _chat(gw, key: str, body=CHAT, **headers) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"authorization": f"Bearer {key}", **headers})


def test_put_get_delete_and_field_errors(org_gw):
    cfg = put_org(org_gw, "acme", name="Acme", models=["prism-mini"], modes=["eco"],
                  budget_usd=5, budget_mode="soft", key_rpm=100)
    assert cfg["config"]["models"] == ["prism-mini"]
    assert cfg["budget"]["limit_micros"] == 5_000_000 and cfg["budget"]["mode"] == "soft"
    got = org_gw.admin.get("/-/orgs/acme/config").json()
    assert got["name"] == "Acme" and got["config"]["key_rpm"] == 100

    r = org_gw.admin.put("/-/orgs/acme/config", json={"models": ["nope"], "budget_usd": -1,
                                                       "colour": "red"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert "colour: unknown key" in err["message"]
    r = org_gw.admin.put("/-/orgs/acme/config", json={"models": ["nope"], "budget_usd": -1})
    err = r.json()["error"]
    assert err["param"] == "config.models[0]"
    assert "config.budget_usd" in err["message"]
    # Unchanged by the refused PUTs.
    assert org_gw.admin.get("/-/orgs/acme/config").json()["config"]["models"] == ["prism-mini"]

    assert org_gw.admin.delete("/-/orgs/acme/config").json()["deleted"] is True
    assert org_gw.admin.get("/-/orgs/acme/config").status_code == 404
    assert org_gw.admin.delete("/-/orgs/acme/config").status_code == 404


def test_bulk_is_all_or_nothing(org_gw):
    good = {"id": "bulk-a", "name": "A", "budget_usd": 1}
    bad = {"id": "bulk-b", "modes": ["turbo"]}
    r = org_gw.admin.post("/-/orgs/configs/bulk", json={"orgs": [good, bad]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "orgs[1].modes[0]"
    assert org_gw.admin.get("/-/orgs/bulk-a/config").status_code == 404

    r = org_gw.admin.post("/-/orgs/configs/bulk",
                          json={"orgs": [good, {"id": "bulk-b", "modes": ["sport"]}]})
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == ["bulk-a", "bulk-b"]
    ids = {o["id"] for o in org_gw.admin.get("/-/orgs/configs").json()["data"]}
    assert {"org_default", "bulk-a", "bulk-b"} <= ids

    r = org_gw.admin.post("/-/orgs/configs/bulk", json={"orgs": [good, good]})
    assert r.status_code == 400 and "duplicate" in r.json()["error"]["message"]


def test_org_restricts_models_and_modes(org_gw):
    put_org(org_gw, "narrow", models=["prism-mini"], modes=["eco"])
    key = member(org_gw, "narrow")["key"]
    assert _chat(org_gw, key).status_code == 200
    r = _chat(org_gw, key, {**CHAT, "model": "prism-big"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    r = _chat(org_gw, key, {**CHAT, "model": "any"}, **{"x-prism-mode": "sport"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "mode_not_allowed"
    r = _chat(org_gw, key, {**CHAT, "model": "any"}, **{"x-prism-mode": "eco"})
    assert r.status_code == 200 and r.headers["x-prism-model"] == "prism-mini"


def test_org_rate_limit_override(org_gw):
    put_org(org_gw, "slow", key_rpm=2)
    key = member(org_gw, "slow")["key"]
    statuses = [_chat(org_gw, key).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]


def test_health_of_the_routes_an_org_uses(org_gw):
    put_org(org_gw, "healthy", models=["prism-mini"])
    r = org_gw.admin.get("/-/health/providers/healthy")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert [(x["model"], x["provider"], x["credential"], x["state"]) for x in body["routes"]] \
        == [("prism-mini", "up", "gateway", "closed")]
    assert org_gw.admin.get("/-/health/providers/nobody").status_code == 404
    assert httpx.get(org_gw.url + "/-/orgs/configs").status_code in (401, 403)


def test_moving_accounts_and_deleting_an_org(org_gw):
    put_org(org_gw, "movers", budget_usd=1)
    key = org_gw.create_key(name="loner")          # joins the default org
    assert org_gw.admin.put(f"/-/orgs/movers/accounts/{key['account_id']}").status_code == 200
    assert org_gw.admin.get("/-/orgs/movers/config").json()["accounts"] == 1
    assert org_gw.admin.put("/-/orgs/movers/accounts/acct_nobody").status_code == 404
    assert org_gw.admin.put(f"/-/orgs/ghost/accounts/{key['account_id']}").status_code == 404
    assert _chat(org_gw, key["key"]).status_code == 200
    spent = org_gw.admin.get("/-/orgs/movers/config").json()["budget"]["spent_micros"]
    assert spent > 0          # the request counted against its new org's budget
    org_gw.admin.delete("/-/orgs/movers/config")
    rows = {o["id"]: o for o in org_gw.admin.get("/-/orgs/configs").json()["data"]}
    assert "movers" not in rows and rows["org_default"]["accounts"] >= 1
    # The default org is reset, never removed.
    r = org_gw.admin.delete("/-/orgs/org_default/config")
    assert r.status_code == 200 and r.json()["reset"] is True
    assert org_gw.admin.get("/-/orgs/org_default/config").status_code == 200
    assert org_gw.admin.put("/-/orgs/bad id!/config", json={}).status_code in (400, 404)
