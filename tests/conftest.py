"""Shared fixtures: real PostgreSQL and a private Redis (never skipped under CI=true), settings, sessions."""
from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
import redis
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from tests.harness import databases
from tests.harness.binaries import MissingBinary
from tests.harness.redis_server import RedisServer

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
T = TypeVar("T")

# Tests never need a real SECRET_KEY; set one before anything builds settings.
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 16)
os.environ.setdefault("ENVIRONMENT", "test")
# Tests (and the processes they start) call far faster than a client's fair share: no fair-use limits
# unless a test sets them (tests/api/test_fair_use.py).
os.environ.setdefault("API_RATE_PER_KEY", "0")
os.environ.setdefault("API_RATE_PER_CUSTOMER", "0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip locally when a service is down; under CI=true a missing service is a failure."""
    if _reachable(host, port):
        return
    if IN_CI:
        pytest.fail(f"{name} is not reachable on {host}:{port} and CI=true: tests must not skip")
    pytest.skip(f"{name} is not running on {host}:{port}")


def require_binary(find: Callable[[], T]) -> T:
    """What `find` finds (a server binary); skip locally when it is not installed, fail under CI=true."""
    try:
        return find()
    except MissingBinary as missing:
        if IN_CI:
            pytest.fail(f"{missing} and CI=true: tests must not skip")
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """This session's own redis-server on a free port: two test runs on one machine never share a Redis.
    Tests keep to their own db numbers on it (broker 9 and limiter 10 for the pipeline, 11, 12, 4)."""
    server = require_binary(RedisServer)
    with server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url(11)


def create_database(name: str) -> str:
    """A database on the machine's PostgreSQL (the session's server), unique by name."""
    return databases.create_database(PG_ADMIN, name)


def drop_database(name: str) -> None:
    databases.drop_database(PG_ADMIN, name)


@contextmanager
def migrated_database(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head (its URL), dropped after."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    from shared.db.migrate import upgrade

    name = prefix + uuid.uuid4().hex[:10]
    url = create_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database migrated to head, for the whole test session."""
    with migrated_database("test_") as url:
        yield url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(pg_engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test (savepoints for inner commits)."""
    conn = pg_engine.connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()
    trans.rollback()
    conn.close()


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change settings through the environment for one test; the cache is cleared around it."""
    from shared.settings import reset_settings

    reset_settings()
    yield monkeypatch
    reset_settings()


@pytest.fixture(scope="session")
def limiter_redis_url(redis_server: RedisServer) -> str:
    """The throttling tests' db on the session's private Redis (shared by the processes a test starts)."""
    return redis_server.url(12)


@pytest.fixture
def limiter_redis(limiter_redis_url: str) -> Iterator[redis.Redis]:
    """A client of that db, emptied before and after the test."""
    client = redis.Redis.from_url(limiter_redis_url, socket_timeout=5)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
