"""Private PostgreSQL databases and Redis key prefixes for one test session.

Other sessions share the servers, so every session makes its own database
(prism_test_<random>, dropped at the end) and every test its own schema in it, and
every Redis key a test writes starts with a prefix of its own.
"""
from __future__ import annotations

import os
import secrets
from urllib.parse import quote

SERVER = os.environ.get("PRISM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("PRISM_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _admin():
    import psycopg
    return psycopg.connect(SERVER + "/test", autocommit=True)


def create_database() -> str:
    name = "prism_test_" + secrets.token_hex(6)
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(name: str) -> str:
    return f"{SERVER}/{name}"


def fresh_schema(database: str) -> tuple[str, str]:
    """A new empty schema in `database`: (its name, a URL whose connections use it)."""
    import psycopg
    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(database_url(database), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{database_url(database)}?options={quote('-csearch_path=' + schema)}"


def drop_schema(database: str, schema: str) -> None:
    import psycopg
    with psycopg.connect(database_url(database), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def redis_prefix() -> str:
    return "prism-test-" + secrets.token_hex(6) + ":"
