"""Helpers the org tests share (a module of its own: several conftest modules are
loaded in one run, so importing from "conftest" would find the wrong one)."""
from __future__ import annotations

import os

SECRETS_KEY = "test-org-secrets-key-" + os.urandom(8).hex()
MARKUPS = {"eco": 15.0, "balanced": 20.0, "sport": 30.0}


def put_org(gw, org_id: str, **config) -> dict:
    r = gw.admin.put(f"/-/orgs/{org_id}/config", json=config)
    assert r.status_code == 200, r.text
    return r.json()


def member(gw, org_id: str, credits_usd: float = 10.0, name: str = "member") -> dict:
    r = gw.admin.post("/-/keys", json={"name": name, "credits_usd": credits_usd,
                                       "org_id": org_id})
    assert r.status_code == 201, r.text
    return r.json()
