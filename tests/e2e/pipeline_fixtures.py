"""Fixtures for the whole-pipeline tests: one emulator, a database of their own, the session's Redis (dbs 9/10)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from emulator.testing import RunningEmulator, running_emulator
from tests.conftest import migrated_database
from tests.harness.processes import Processes
from tests.harness.redis_server import RedisServer
from tests.harness.seeding import Seeder, quiet_emulator
from tests.harness.stack_env import publishing_as, stack_env

__all__ = ["emulator", "pipeline_env", "pipeline_pg_url", "seeder"]
BROKER_DB, LIMITER_DB = 9, 10


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


@pytest.fixture(scope="session")
def pipeline_pg_url() -> Iterator[str]:
    """The stacks' own database: their beat re-drives every stale request of its database, and the
    thousands other packages leave queued (they never run a worker, and their partners are not this
    emulator's) must not flood a stack's workers."""
    with migrated_database("test_pipeline_") as url:
        yield url


@pytest.fixture(scope="session")
def pipeline_env(pipeline_pg_url: str, emulator: RunningEmulator,
                 redis_server: RedisServer) -> Iterator[dict[str, str]]:
    """The processes' environment; this process publishes with the same settings (broker db 9)."""
    env = stack_env(database_url=pipeline_pg_url, broker_url=redis_server.url(BROKER_DB),
                    limiter_url=redis_server.url(LIMITER_DB), emulator=emulator)
    with publishing_as(env):
        yield env


@pytest.fixture(scope="session")
def seeder(pipeline_pg_url: str, emulator: RunningEmulator, pipeline_env: dict[str, str]) -> Iterator[Seeder]:
    s = Seeder(pipeline_pg_url, emulator)
    yield s
    s.close()


def pipeline_redis(env: dict[str, str]) -> list[redis.Redis]:
    """Clients on the pipeline's broker and limiter dbs (the session's private Redis)."""
    return [redis.Redis.from_url(env["BROKER_URL"]), redis.Redis.from_url(env["REDIS_URL"])]


def flush_pipeline_redis(env: dict[str, str]) -> None:
    for client in pipeline_redis(env):
        with client:
            client.flushdb()


def fresh_stack(env: dict[str, str], emulator: RunningEmulator, *, settings: dict[str, str] | None = None,
                **faults: Any) -> Processes:
    """Empty broker and limiter, emulator faults as given (the emulator world is kept: tenants are unique);
    `settings` overrides environment variables of the worker and beat processes (prefork workers)."""
    flush_pipeline_redis(env)
    quiet_emulator(emulator, **faults)
    return Processes({**env, **(settings or {})}, pool="prefork")
