"""Shared fixtures: a simulator over HTTP and a gateway in front of it, on real sockets."""
from __future__ import annotations

import pytest

import harness


@pytest.fixture(scope="session")
def sim_url():
    sim = harness.start_simulator()
    yield sim.url
    sim.stop()


@pytest.fixture(scope="module")
def gateway(sim_url, tmp_path_factory):
    gw = harness.start_gateway(tmp_path_factory.mktemp("gw"), sim_url)
    yield gw
    gw.stop()


@pytest.fixture
def fresh_gateway(sim_url, tmp_path):
    """A gateway with its own empty store, for tests that count ledger rows."""
    gw = harness.start_gateway(tmp_path, sim_url)
    yield gw
    gw.stop()
