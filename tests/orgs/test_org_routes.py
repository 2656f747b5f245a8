"""An org config's own routes and alert thresholds: validated like prism.toml (errors
name the field); one org's requests go to its routes' upstream model while another
org keeps the default; a custom threshold alerts exactly once."""
from __future__ import annotations

import logging

import httpx

from org_helpers import member, put_org

CHAT = {"model": "prism-mini", "max_tokens": 30,
        "messages": [{"role": "user", "content": "say: hello routes"}]}


def _chat(gw, key: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=CHAT, timeout=30,
                      headers={"authorization": f"Bearer {key}"})


def _upstream_models(gw, key_id: str, n: int) -> list[str]:
    """The key's logged upstream models, once `n` rows are there (the log is written
    just after the response)."""
    import time
    deadline = time.monotonic() + 10
    while True:
        rows = _rows(gw, key_id)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def _rows(gw, key_id: str) -> list[str]:
    db = gw.db()
    try:
        rows = db.execute_sql("SELECT upstream_model FROM request_log WHERE key_id = ? "
                              "ORDER BY created_at"
                              .replace("?", "%s" if "Postgres" in type(db).__name__ else "?"),
                              (key_id,)).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def test_org_route_override_validated(org_gw):
    bad = {"routes": [{"model": "nope", "routes": [{"provider": "up", "model": "x"}]},
                      {"model": "prism-mini", "routes": [{"provider": "ghost", "model": "x"}]},
                      {"model": "prism-mini", "routes": []}]}
    r = org_gw.admin.put("/-/orgs/badroutes/config", json=bad)
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert "routes[0].model: unknown model 'nope'" in msg
    assert "routes[1].routes[0].provider: unknown provider 'ghost'" in msg
    assert "routes[2].model: 'prism-mini' already overridden by routes[1]" in msg
    assert "routes[2].routes: give 1..8 routes" in msg
    r = org_gw.admin.put("/-/orgs/badth/config", json={"alert_thresholds": [80, 50, 101]})
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert "alert_thresholds[1]: must be above 80 (ascending)" in msg
    assert "alert_thresholds[2]: must be between 1 and 100" in msg


def test_org_routes_override_only_that_org(org_gw):
    put_org(org_gw, "rerouted", routes=[{"model": "prism-mini", "routes": [
        {"provider": "up", "model": "sim-org-upstream"}]}])
    got = org_gw.admin.get("/-/orgs/rerouted/config").json()
    assert "sim-org-upstream" in str(got)
    put_org(org_gw, "plain")
    health = org_gw.admin.get("/-/health/providers/rerouted").json()["routes"]
    assert {"model": "prism-mini", "upstream_model": "sim-org-upstream", "routes_from": "org"} \
        .items() <= next(r for r in health if r["model"] == "prism-mini").items()
    mine = member(org_gw, "rerouted", name="rerouted")
    other = member(org_gw, "plain", name="plain")
    for k in (mine, other):
        r = _chat(org_gw, k["key"])
        assert r.status_code == 200, r.text
        assert r.headers["x-prism-model"] == "prism-mini"
    assert _upstream_models(org_gw, mine["id"], 1) == ["sim-org-upstream"]
    assert _upstream_models(org_gw, other["id"], 1) == ["sim-mini"]
    # Removing the override brings the default routes back at once.
    put_org(org_gw, "rerouted")
    assert _chat(org_gw, mine["key"]).status_code == 200
    assert _upstream_models(org_gw, mine["id"], 2) == ["sim-org-upstream", "sim-mini"]


def test_custom_threshold_alerts_once(org_gw, caplog):
    put_org(org_gw, "custom-th", budget_usd=0.0005, budget_mode="soft", alert_thresholds=[30])
    key = member(org_gw, "custom-th", credits_usd=1.0)["key"]
    caplog.set_level(logging.WARNING, logger="prism.orgs")
    for _ in range(40):      # ~25 micro-USD each: well past 100% of 500
        assert _chat(org_gw, key).status_code == 200
    lines = [r.getMessage() for r in caplog.records
             if "org custom-th budget alert" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "30%" in lines[0]


def test_expired_key_gets_no_idempotent_replay(org_gw):
    key = member(org_gw, "plain", name="idem")
    headers = {"authorization": f"Bearer {key['key']}", "Idempotency-Key": "expire-me-1"}
    first = httpx.post(org_gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    again = httpx.post(org_gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]   # a replay
    assert org_gw.admin.put(f"/-/keys/{key['id']}", json={"expires_at": 1}).status_code == 200
    r = httpx.post(org_gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "key_expired", r.text
