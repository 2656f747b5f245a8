"""A gateway in front of its own HTTP simulator (which records the credential it was
sent), with mode markups and an org secrets key, for the org tests."""
from __future__ import annotations

import os

import pytest

import harness

SECRETS_KEY = "test-org-secrets-key-" + os.urandom(8).hex()
MARKUPS = {"eco": 15.0, "balanced": 20.0, "sport": 30.0}


@pytest.fixture(scope="module")
def org_sim():
    sim = harness.start_simulator()
    yield sim.url
    sim.stop()


def _store(tmp, request) -> dict:
    """SQLite unless PRISM_TEST_STORE=postgresql (the CI's second pass)."""
    if os.environ.get("PRISM_TEST_STORE", "sqlite") != "postgresql":
        return {}
    import pgtest
    database = request.getfixturevalue("pg_database")
    schema, url = pgtest.fresh_schema(database)
    request.addfinalizer(lambda: pgtest.drop_schema(database, schema))
    return {"url": url}


@pytest.fixture(scope="module")
def org_gw(org_sim, tmp_path_factory, request):
    os.environ["PRISM_ORG_SECRETS_KEY"] = SECRETS_KEY
    tmp = tmp_path_factory.mktemp("orgs")
    gw = harness.start_gateway(tmp, org_sim, markups=MARKUPS,
                               media={"allow_private_hosts": True},
                               store=_store(tmp, request))
    yield gw
    gw.stop()


def put_org(gw, org_id: str, **config) -> dict:
    r = gw.admin.put(f"/-/orgs/{org_id}/config", json=config)
    assert r.status_code == 200, r.text
    return r.json()


def member(gw, org_id: str, credits_usd: float = 10.0, name: str = "member") -> dict:
    r = gw.admin.post("/-/keys", json={"name": name, "credits_usd": credits_usd,
                                       "org_id": org_id})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def connect_control():
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "control", "conftest.py")
    spec = importlib.util.spec_from_file_location("control_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    SyncControl = module.SyncControl      # tests/control's blocking client
    opened = []

    def factory(path: str):
        c = SyncControl(path)
        opened.append(c)
        return c
    yield factory
    for c in opened:
        c.close()
