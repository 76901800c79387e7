"""Fixtures of the failure drills: per drill module a private PostgreSQL cluster, redis-server and emulator.

The drills stop, crash and restart these, never the machine's services (other test runs share those).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emulator.testing import RunningEmulator, running_emulator
from tests.conftest import require_binary
from tests.harness.databases import create_database
from tests.harness.postgres_cluster import PostgresCluster
from tests.harness.processes import Processes
from tests.harness.redis_server import RedisServer
from tests.harness.seeding import Seeder, quiet_emulator
from tests.harness.stack_env import DRILL, MICROSOFT_KEYS, SHARED_KEYS, publishing_as, stack_env
from tests.reliability.drill import BROKER_DB, LIMITER_DB, MAILBOX_DELAY


@dataclass
class Drill:
    env: dict[str, str]
    seeder: Seeder
    emulator: RunningEmulator
    postgres: PostgresCluster
    redis: RedisServer

    def stack(self, **settings: str) -> Processes:
        """The drill's processes (threads pool), with `settings` on top of the drill's environment."""
        return Processes({**self.env, **settings})

    def fresh(self, **faults: object) -> None:
        """Empty broker and limiter; the emulator quiet but for the drill's mailbox delay and `faults`."""
        self.redis.flush(BROKER_DB, LIMITER_DB)
        quiet_emulator(self.emulator, **{"mailbox_delay_s": MAILBOX_DELAY, **faults})

    def restarted_postgres(self) -> None:
        """After a restart every pooled connection of this process is dead: start afresh."""
        from shared.db.engine import dispose_engine

        dispose_engine()
        self.seeder.engine.dispose()


@pytest.fixture(scope="module")
def drill_services() -> Iterator[tuple[PostgresCluster, RedisServer]]:
    cluster = require_binary(PostgresCluster)
    server = require_binary(RedisServer)
    with cluster, server:
        yield cluster, server


@pytest.fixture(autouse=True)
def _services_left_running(drill_services: tuple[PostgresCluster, RedisServer]) -> Iterator[None]:
    """Whatever a drill did to its Redis or PostgreSQL, both are up again for the next drill of the module."""
    try:
        yield
    finally:
        for service in drill_services:
            if not service.running:
                service.start()


@pytest.fixture(scope="module")
def drill(drill_services: tuple[PostgresCluster, RedisServer]) -> Iterator[Drill]:
    """The workers' environment, and this process set up to publish with the same settings."""
    cluster, server = drill_services
    database_url = create_database(cluster.admin_url, "drill_" + uuid.uuid4().hex[:10], migrate=True)
    with running_emulator() as emulator:
        env = stack_env(database_url=database_url, broker_url=server.url(BROKER_DB),
                        limiter_url=server.url(LIMITER_DB), emulator=emulator, settings=DRILL)
        with publishing_as(env, keys=(*SHARED_KEYS, *MICROSOFT_KEYS)):
            seeder = Seeder(database_url, emulator)
            try:
                yield Drill(env, seeder, emulator, cluster, server)
            finally:
                seeder.close()
