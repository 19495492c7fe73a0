"""Real services for tests: a throwaway PostgreSQL server. On a user's machine without it the tests
skip with the reason; in CI (CI=true) a missing service is a failure."""
from __future__ import annotations

import os

import pytest

from lclab.testing.postgres import PostgresServer, Unavailable


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must provide this service: {reason}")
    pytest.skip(reason)


def _server() -> PostgresServer:
    try:
        return PostgresServer()
    except Unavailable as err:
        unavailable(str(err))


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a PostgreSQL database: $LCLAB_TEST_PG_URL, or a server started here from Debian's binaries."""
    if os.environ.get("LCLAB_TEST_PG_URL"):
        yield os.environ["LCLAB_TEST_PG_URL"]
        return
    server = _server()
    yield server.url
    server.remove()


@pytest.fixture
def postgres_server():
    """A PostgreSQL server of the test's own, which the test may stop and start (never a shared one)."""
    server = _server()
    yield server
    server.remove()


def fresh_database(url: str, name: str) -> str:
    """A new empty database on the same server (one per test)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"
