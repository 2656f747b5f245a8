"""Shared fixtures: a simulator over HTTP and a gateway in front of it, on real sockets.

`store_target` is a fresh, empty store for one test, on each engine the store supports:
a SQLite file, and a schema of its own in this session's PostgreSQL database. With
PRISM_TEST_STORE=postgresql the gateway fixtures put their stores on PostgreSQL too.
"""
from __future__ import annotations

import os

import pytest

import harness
import pgtest

STORE_ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_database():
    name = pgtest.create_database()
    yield name
    pgtest.drop_database(name)


def _target(engine: str, tmp_path, request):
    if engine == "sqlite":
        return str(tmp_path / "prism.db")
    database = request.getfixturevalue("pg_database")
    schema, url = pgtest.fresh_schema(database)
    request.addfinalizer(lambda: pgtest.drop_schema(database, schema))
    return url


@pytest.fixture(params=STORE_ENGINES)
def store_target(request, tmp_path):
    return _target(request.param, tmp_path, request)


def gateway_store(tmp_path, request) -> dict:
    """The [store] overrides for a gateway fixture: SQLite unless PRISM_TEST_STORE says."""
    engine = os.environ.get("PRISM_TEST_STORE", "sqlite")
    if engine == "sqlite":
        return {}
    return {"url": _target(engine, tmp_path, request)}


@pytest.fixture
def store_overrides(tmp_path, request) -> dict:
    """gateway_store as a fixture, for tests that start (and restart) their own gateways."""
    return gateway_store(tmp_path, request)


@pytest.fixture(scope="session")
def sim_url():
    sim = harness.start_simulator()
    yield sim.url
    sim.stop()


@pytest.fixture(scope="module")
def gateway(sim_url, tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("gw")
    gw = harness.start_gateway(tmp, sim_url, store=gateway_store(tmp, request))
    yield gw
    gw.stop()


@pytest.fixture
def fresh_gateway(sim_url, tmp_path, request):
    """A gateway with its own empty store, for tests that count ledger rows."""
    gw = harness.start_gateway(tmp_path, sim_url, store=gateway_store(tmp_path, request))
    yield gw
    gw.stop()
