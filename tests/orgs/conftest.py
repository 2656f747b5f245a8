"""A gateway in front of its own HTTP simulator (which records the credential it was
sent), with mode markups and an org secrets key, for the org tests."""
from __future__ import annotations

import os

import pytest

import harness

from org_helpers import MARKUPS, SECRETS_KEY


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
