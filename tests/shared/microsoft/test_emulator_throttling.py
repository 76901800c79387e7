"""Throttling etiquette against the emulator: no call inside an announced Retry-After window, good throughput."""
from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
import redis

from tests.harness.redis_server import RedisServer
from tests.shared.microsoft.ms_emulator import USERS, Seeded, hammer, seed, settings_for
from tests.shared.microsoft.ms_fakes import LIMITER_TEST_DB

testing = pytest.importorskip("emulator.testing")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# The emulator's allowed rate per tenant, and our configured rate under it (the etiquette's headroom).
EMULATOR_RATE = 50.0
CLIENT_SHARE = 0.95
SECONDS = 4.0


@pytest.fixture(scope="module")
def emulator() -> Iterator[testing.RunningEmulator]:
    with testing.running_emulator() as running:
        yield running


@pytest.fixture
def shared_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client(LIMITER_TEST_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.mark.redis
def test_two_processes_share_one_tenant_without_violations(emulator: testing.RunningEmulator,
                                                           redis_server: RedisServer,
                                                           shared_redis: redis.Redis) -> None:
    world = seed(emulator, graph_rate_per_tenant=EMULATOR_RATE)
    overrides = {"redis_url": redis_server.url(LIMITER_TEST_DB), "graph_rate_per_tenant": EMULATOR_RATE * CLIENT_SHARE,
                 "graph_burst_per_tenant": 5.0, "retry_budget_s": 30.0}
    start_at = time.time() + 3.0  # both processes signed in and connected before the window opens
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(hammer, world, overrides, threads=4, start_at=start_at, seconds=SECONDS)
                   for _ in range(2)]
        results = [f.result(timeout=120) for f in futures]
    stats = emulator.stats()
    ok = sum(r["ok"] for r in results)
    assert stats["retry_after_violations"] == 0, stats
    assert all(not r["failures"] for r in results), results
    assert all(r["ok"] > 0 for r in results), results  # both processes got their share
    # The shared limiter lets one process use the whole rate: the window opens with the first one.
    window = results[0]["end"] - min(r["started"] for r in results)
    share = ok / window / EMULATOR_RATE
    assert share >= 0.8, f"achieved {share:.2f} of the emulator's allowed rate ({results}, {stats['throttled']=})"
    assert shared_redis.exists(f"ms:limit:{{graph:{world.tenant_id}}}:bucket")


def test_retry_after_is_honoured_when_the_configured_rate_is_too_high(emulator: testing.RunningEmulator) -> None:
    # One caller at a time (no request in flight when a 429 arrives): every 429 must be waited out,
    # so the emulator throttles often and never sees a call inside its window.
    from shared.microsoft.factory import MicrosoftClients

    world: Seeded = seed(emulator, graph_rate_per_tenant=20.0)
    clients = MicrosoftClients(settings_for(world, graph_rate_per_tenant=200.0, graph_burst_per_tenant=50.0))
    graph = clients.graph(world.credential, world.tenant_id)
    try:
        for i in range(80):
            assert graph.get_user(USERS[i % len(USERS)], select=["id"])["id"]
    finally:
        clients.close()
    stats = emulator.stats()
    assert stats["throttled"] > 0
    assert stats["retry_after_violations"] == 0, stats
