"""Fixtures for sync tests: one emulator per session, settings on the test Postgres, a tenant per test."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emulator.testing import RunningEmulator, running_emulator
from shared.db.engine import dispose_engine
from shared.microsoft.factory import reset_microsoft
from tests.shared.sync.builders import PARTNER_CLIENT, PARTNER_SECRET, PARTNER_TENANT, SyncWorld


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        running.add_partner(PARTNER_TENANT, PARTNER_CLIENT, PARTNER_SECRET)
        yield running


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The embedded default's database: a migrated SQLite file shared by the session's SQLite runs."""
    from shared.db.migrate import upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('sync-sqlite') / 'provisioner.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["postgres", "sqlite"])
def sync_env(request: pytest.FixtureRequest, settings_env: pytest.MonkeyPatch,
             emulator: RunningEmulator) -> Iterator[None]:
    """UnitOfWork() and get_microsoft() point at a test database and the emulator for one test.

    Every sync test runs on PostgreSQL and on SQLite (the embedded default must work too).
    """
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    for name in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL"):
        settings_env.setenv(name, emulator.url)
    settings_env.setenv("MS_CA_BUNDLE", emulator.ca_path)
    settings_env.setenv("DATABASE_URL", url)
    settings_env.delenv("REDIS_URL", raising=False)
    dispose_engine()
    reset_microsoft()
    yield
    reset_microsoft()
    dispose_engine()


@pytest.fixture
def sync_world(sync_env: None, emulator: RunningEmulator) -> Iterator[SyncWorld]:
    """A fresh emulator tenant (unique domains) and a reseller whose rows are deleted afterwards."""
    world = SyncWorld(emulator, uuid.uuid4().hex[:10])
    yield world
    world.cleanup()
