"""Fixtures of the failure drills: a fresh database and emulator per drill module, services always left up."""
from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import Engine

from emulator.testing import RunningEmulator, running_emulator
from tests.conftest import create_database, drop_database, require_service
from tests.reliability.stack import World, drill_env, flush_redis, start_postgres, start_redis

# What this process (the drill's publisher) must agree on with the workers: broker, database, lease.
_SHARED_ENV = ("DATABASE_URL", "BROKER_URL", "REDIS_URL", "ENVIRONMENT", "LEASE_SECONDS", "REDRIVE_AFTER_S",
               "MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL", "MS_CA_BUNDLE")


@dataclass
class Drill:
    env: dict[str, str]
    world: World
    emulator: RunningEmulator


def dispose_pooled_engines() -> None:
    """After a PostgreSQL restart every pooled connection in this process is dead: drop them all, so the
    session's other fixtures (e.g. tests/conftest.py's pg_engine, which has no pre-ping) start afresh."""
    from shared.db.engine import dispose_engine

    dispose_engine()
    for obj in gc.get_objects():
        if isinstance(obj, Engine):
            obj.dispose()


@pytest.fixture(autouse=True)
def _services_left_running() -> Iterator[None]:
    """Whatever a drill did to Redis or PostgreSQL, both are up again afterwards."""
    try:
        yield
    finally:
        start_redis()
        start_postgres()


@pytest.fixture(scope="module")
def drill_db() -> Iterator[str]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    from shared.db.migrate import upgrade

    name = "drill_" + uuid.uuid4().hex[:10]
    url = create_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        start_postgres()
        dispose_pooled_engines()
        drop_database(name)


@pytest.fixture(scope="module")
def drill(drill_db: str) -> Iterator[Drill]:
    """The workers' environment, and this process set up to publish with the same settings."""
    from shared.requests import dispatch
    from shared.settings import reset_settings
    from worker.app import install_publisher, reset_app

    with running_emulator() as emulator, pytest.MonkeyPatch.context() as mp:
        env = drill_env(drill_db, emulator)
        for key in _SHARED_ENV:
            mp.setenv(key, env[key])
        reset_settings()
        reset_app()
        dispose_pooled_engines()
        install_publisher()  # worker.canvas.publish, on this process's (drill) settings
        world = World(drill_db, emulator)
        try:
            yield Drill(env, world, emulator)
        finally:
            world.close()
            start_redis()
            flush_redis()  # no drill messages or limiter keys left behind
            reset_app()
            dispose_pooled_engines()
            dispatch.set_publisher(None)
    reset_settings()
