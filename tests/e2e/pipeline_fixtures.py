"""Fixtures for the whole-pipeline tests: one emulator, the test database, Redis db 9/10, processes."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import RunningEmulator, running_emulator
from tests.conftest import require_service
from tests.e2e.pipeline_harness import Processes, Seeder, flush_redis, stack_env

__all__ = ["emulator", "pipeline_env", "seeder"]


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


@pytest.fixture(scope="session")
def pipeline_env(pg_url: str, emulator: RunningEmulator) -> Iterator[dict[str, str]]:
    """The processes' environment; this process publishes with the same settings (broker db 9)."""
    require_service("Redis", "127.0.0.1", 6379)
    env = stack_env(pg_url, emulator)
    from shared.db.engine import dispose_engine
    from shared.requests import dispatch
    from shared.settings import reset_settings
    from worker.app import install_publisher, reset_app

    with pytest.MonkeyPatch.context() as mp:
        for key in ("DATABASE_URL", "BROKER_URL", "REDIS_URL", "ENVIRONMENT", "LEASE_SECONDS", "REDRIVE_AFTER_S"):
            mp.setenv(key, env[key])
        reset_settings()
        reset_app()
        dispose_engine()
        install_publisher()  # Celery chains, as the API process sends them
        yield env
        dispatch.set_publisher(None)
        reset_app()
        dispose_engine()
    reset_settings()


@pytest.fixture(scope="session")
def seeder(pg_url: str, emulator: RunningEmulator, pipeline_env: dict[str, str]) -> Iterator[Seeder]:
    s = Seeder(pg_url, emulator)
    yield s
    s.close()


def fresh_stack(env: dict[str, str], emulator: RunningEmulator, *, settings: dict[str, str] | None = None,
                **faults: object) -> Processes:
    """Empty broker and limiter, emulator faults as given (the emulator world is kept: tenants are unique);
    `settings` overrides environment variables of the worker and beat processes."""
    flush_redis()
    emulator.set_faults(latency_ms={"mean": 0, "jitter": 0}, error_rate=0.0, graph_rate_per_tenant=None,
                        exchange_rate_per_tenant=None, partner_center_rate=None, replication_lag_s=0.0,
                        mailbox_delay_s={"first": 0, "next": 0}, token_fail_rate=0.0)
    if faults:
        emulator.set_faults(**faults)
    return Processes({**env, **(settings or {})})
