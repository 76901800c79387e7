"""Throttling etiquette against the emulator: no call inside an announced Retry-After window, good throughput."""
from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
import redis

from shared.microsoft.limiter_redis import RedisLimiter
from tests.shared.microsoft.ms_emulator import hammer, seed

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
def shared_redis(limiter_redis: redis.Redis) -> redis.Redis:
    return limiter_redis


@pytest.mark.redis
def test_two_processes_share_one_tenant_without_violations(
        limiter_redis_url: str, emulator: testing.RunningEmulator,
                                                           shared_redis: redis.Redis) -> None:
    world = seed(emulator, graph_rate_per_tenant=EMULATOR_RATE)
    overrides = {"redis_url": limiter_redis_url, "graph_rate_per_tenant": EMULATOR_RATE * CLIENT_SHARE,
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
    assert ok == sum(r["ok"] for r in results) > 0
    # How much of the allowed rate the two reach together is a figure, not a timed assertion:
    # bench/ms_client_throttling.py prints it.
    assert shared_redis.exists(f"ms:limit:{{graph:{world.tenant_id}}}:state")


@pytest.mark.redis
@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_unknown_limit_is_learned_by_both_processes(
        limiter_redis_url: str, emulator: testing.RunningEmulator,
                                                       shared_redis: redis.Redis, concurrency: int) -> None:
    # The configured rate is the default ceiling, 15 times what the tenant allows: only 429s can teach it.
    world = seed(emulator, graph_rate_per_tenant=20.0)
    overrides = {"redis_url": limiter_redis_url, "ms_concurrency_per_tenant": concurrency}
    start_at = time.time() + 3.0
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(hammer, world, overrides, threads=4, start_at=start_at, seconds=SECONDS)
                   for _ in range(2)]
        results = [f.result(timeout=120) for f in futures]
    stats = emulator.stats()
    mine = stats["by_tenant"][world.tenant_id]
    assert mine["throttled"] > 0  # it had to learn
    # Only calls already on the wire when a 429 was announced can land inside its window.
    assert mine.get("retry_after_violations", 0) <= (concurrency - 1) * mine["throttled"], (mine, results)
    # Waits too long for a call were handed back as Throttled, never slept; nothing else failed.
    assert all(set(r["failures"]) <= {"Throttled"} for r in results), results
    learned = RedisLimiter(shared_redis).allowed_rates()
    rate = dict(learned)[f"graph:{world.tenant_id}"]
    assert rate is not None and rate < 300 / 2  # one rate, learned in Redis for both processes
