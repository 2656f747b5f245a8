"""The issue-16 admin routes refuse what they cannot use with our own errors (never a
500) and answer a single process's views."""
from __future__ import annotations

import httpx
import pytest

import harness


@pytest.fixture
def gw(tmp_path, monkeypatch):
    monkeypatch.delenv("PRISM_SECRET_KEY", raising=False)
    gateway = harness.start_gateway(tmp_path, None)
    yield gateway
    gateway.stop()


@pytest.mark.parametrize("body,param", [
    ([], None),
    ({"api_key_env": 5}, "api_key_env"),
    ({"api_key_env": "A", "api_key": "b"}, "api_key_env"),
    ({}, "api_key_env"),
    ({"api_key_env": "not a name"}, "api_key_env"),
    ({"api_key_env": "PRISM_TEST_UPSTREAM_KEY", "share": "half"}, "share"),
    ({"api_key_env": "PRISM_TEST_UPSTREAM_KEY", "share": -0.1}, "share"),
    ({"api_key_env": "PRISM_TEST_UPSTREAM_KEY", "extra": 1}, "extra"),
    ({"api_key": "sk-" + "x" * 5000}, "api_key"),
    ({"api_key": "sk-needs-a-sealing-key"}, "api_key"),
])
def test_bad_rotate_bodies_are_400_naming_the_field(gw, body, param):
    r = gw.admin.post("/-/admin/providers/up/rotate", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request" and err["param"] == param
    if param == "api_key" and "needs" in str(body):
        assert "PRISM_SECRET_KEY" in err["message"]
        assert "sk-needs-a-sealing-key" not in r.text


def test_admin_token_unknown_provider_and_bad_query(gw):
    for method, path in (("POST", "/-/admin/providers/up/rotate"), ("GET", "/-/shadow/stats"),
                         ("GET", "/-/cluster/nodes"),
                         ("POST", "/-/admin/providers/up/rotate/promote")):
        r = httpx.request(method, gw.url + path, json={})
        assert r.status_code == 401, (path, r.text)
    assert gw.admin.get("/-/admin/providers/nope/rotation").status_code == 404
    r = gw.admin.post("/-/admin/providers/up/rotate/rollback")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_rotating"
    assert gw.admin.get("/-/shadow/stats?since=abc").status_code == 400
    view = gw.admin.get("/-/admin/providers/up/rotation").json()
    assert view["state"] == "steady" and view["history"] == []
    assert [c["label"] for c in view["credentials"]] == ["none"]   # the in-process simulator
    stats = gw.admin.get("/-/shadow/stats").json()
    assert stats["pairs"] == [] and stats["operator_account"]["balance_micros"] == 0


def test_a_single_process_lists_itself(gw):
    view = gw.admin.get("/-/cluster/nodes").json()
    (me,) = view["nodes"]
    assert me["self"] is True and me["id"] == view["node"] and me["stale"] is False
    assert me["in_flight"] == 0 and me["version"] and len(me["config_hash"]) == 16
    # The older /-/cluster keeps saying this process does not share its store.
    assert gw.admin.get("/-/cluster").json()["shared"] is False
