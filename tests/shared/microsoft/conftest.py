"""Fixtures for the Microsoft clients: a fake clock, a fake Microsoft behind httpx.MockTransport."""
from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import redis

from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from shared.microsoft.limiter import LocalLimiter
from shared.settings import Settings
from tests.harness.redis_server import RedisServer
from tests.shared.microsoft.ms_fakes import LIMITER_TEST_DB, PARTNER, SECRET, FakeClock, FakeMicrosoft


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("MS_") or name in ("REDIS_URL",):
            monkeypatch.delenv(name)
    return Settings(environment="test", retry_max_attempts=6, retry_max_wait_s=30.0, retry_inline_wait_s=2.0,
                    retry_budget_s=10.0, graph_rate_per_tenant=1000.0, graph_burst_per_tenant=100.0)


@pytest.fixture
def fake() -> FakeMicrosoft:
    return FakeMicrosoft()


@pytest.fixture
def credential() -> PartnerCredential:
    return PartnerCredential(PARTNER, "app-client-id", SECRET)


@pytest.fixture
def ms(settings: Settings, fake: FakeMicrosoft, clock: FakeClock) -> Iterator[MicrosoftClients]:
    http = httpx.Client(transport=httpx.MockTransport(fake))
    clients = MicrosoftClients(settings, http_client=http, limiter=LocalLimiter(clock.now),
                               sleep=clock.sleep, clock=clock.now)
    yield clients
    http.close()
    # Whatever a test did, no call slept longer than the inline wait.
    assert max(clock.sleeps, default=0.0) <= settings.retry_inline_wait_s


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The limiter tests' db on the session's private Redis, empty."""
    client = redis_server.client(LIMITER_TEST_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
