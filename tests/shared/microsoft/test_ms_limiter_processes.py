"""The Redis limiter shared by separate processes: calls in flight, Retry-After windows, learned rates."""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import pytest
import redis

from shared.microsoft.limiter_redis import RedisLimiter
from tests.shared.microsoft.ms_fakes import LIMITS
from tests.shared.microsoft.ms_processes import hold_slots, report_429

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture
def shared_redis(limiter_redis: redis.Redis) -> redis.Redis:
    return limiter_redis


def spawn(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))


def test_two_processes_never_have_more_calls_in_flight_than_the_tenant_allows(
        limiter_redis_url: str, shared_redis: redis.Redis) -> None:
    limits = replace(LIMITS, rate=10_000.0, burst=100.0, concurrency=3, write_concurrency=1)
    start_at = time.time() + 2.0  # both processes running before the clock starts
    with spawn(2) as pool:
        futures = [pool.submit(hold_slots, limiter_redis_url, "graph:shared", limits, threads=4, start_at=start_at,
                               seconds=1.5, write_every=3) for _ in range(2)]
        results = [f.result(timeout=60) for f in futures]
    assert all(r["grants"] > 0 for r in results), results  # both processes got slots
    assert max(r["max_in_flight"] for r in results) <= limits.concurrency, results
    assert max(r["max_writes"] for r in results) <= limits.write_concurrency, results
    # Eight threads wanted slots all along: the limit was reached, not merely respected.
    assert max(r["max_in_flight"] for r in results) == limits.concurrency, results


def test_a_429_seen_by_one_process_closes_the_tenant_for_the_other(
        limiter_redis_url: str, shared_redis: redis.Redis) -> None:
    here = RedisLimiter(shared_redis, prefix="test:limit")
    with spawn(1) as pool:
        pool.submit(report_429, limiter_redis_url, "graph:t", LIMITS, 30.0).result(timeout=60)
    grant = here.acquire("graph:t", LIMITS, write=False, max_wait=2.0, reserved=False)
    assert grant.reason == "blocked" and 25 < grant.wait <= 30
    learned = dict(here.allowed_rates())["graph:t"]
    assert learned is not None and learned < LIMITS.rate  # and the rate it learned is this process's too
    assert here.acquire("exchange:t", LIMITS, write=False, max_wait=2.0, reserved=False).reason == "ok"
