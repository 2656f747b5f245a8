"""A PostgreSQL schema of its own and gateway processes on it, for the scale tests."""
from __future__ import annotations

import pytest

import pgtest


@pytest.fixture(scope="module")
def pg_store(pg_database):
    schema, url = pgtest.fresh_schema(pg_database)
    yield url
    pgtest.drop_schema(pg_database, schema)
