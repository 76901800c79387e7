"""Token buckets and blocked-until windows: in-process and in Redis (shared by processes)."""
from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.microsoft.errors import Transient
from shared.microsoft.limiter import LocalLimiter, RedisLimiter, make_limiter
from shared.settings import Settings
from tests.harness.redis_server import RedisServer
from tests.shared.microsoft.ms_fakes import LIMITER_TEST_DB, FakeClock


def test_local_bucket_bursts_then_paces(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock.now)
    assert [limiter.acquire("k", rate=10, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("k", rate=10, burst=3)
    assert wait == pytest.approx(0.1)
    clock.sleep(wait + 1e-6)  # float time: waiting exactly `wait` may leave a hair short of a token
    assert limiter.acquire("k", rate=10, burst=3) == 0.0
    assert limiter.acquire("other", rate=10, burst=3) == 0.0  # keys are independent


def test_local_bucket_refills_up_to_burst_only(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock.now)
    limiter.acquire("k", rate=10, burst=2)
    clock.sleep(100)
    assert [limiter.acquire("k", rate=10, burst=2) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.acquire("k", rate=10, burst=2) > 0


def test_local_block_until(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock.now)
    limiter.block_until("k", clock.now() + 5)
    limiter.block_until("k", clock.now() + 2)  # never shortens
    assert limiter.blocked_for("k") == pytest.approx(5)
    assert limiter.acquire("k", rate=10, burst=3) == pytest.approx(5)
    assert limiter.blocked_for("other") == 0.0
    clock.sleep(5)
    assert limiter.blocked_for("k") == 0.0
    assert limiter.acquire("k", rate=10, burst=3) == 0.0


def test_local_limiter_is_thread_safe(clock: FakeClock) -> None:
    limiter = LocalLimiter(clock.now)  # frozen clock: exactly `burst` slots exist
    taken: list[float] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        taken.extend(w for w in (limiter.acquire("k", rate=1, burst=50) for _ in range(10)) if w == 0)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 50


def test_make_limiter_follows_redis_url(redis_server: RedisServer) -> None:
    assert isinstance(make_limiter(Settings(environment="test", redis_url=None)), LocalLimiter)
    limiter = make_limiter(Settings(environment="test", redis_url=redis_server.url(LIMITER_TEST_DB)))
    assert isinstance(limiter, RedisLimiter)


@pytest.mark.redis
def test_redis_bucket_bursts_then_paces(redis_db: redis.Redis) -> None:
    limiter = RedisLimiter(redis_db)
    assert [limiter.acquire("graph:t", rate=10, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("graph:t", rate=10, burst=3)
    assert 0.05 < wait <= 0.1
    time.sleep(wait)
    assert limiter.acquire("graph:t", rate=10, burst=3) == 0.0
    assert limiter.acquire("graph:u", rate=10, burst=3) == 0.0


@pytest.mark.redis
def test_redis_block_until_is_shared_and_only_extends(redis_db: redis.Redis) -> None:
    one, two = RedisLimiter(redis_db), RedisLimiter(redis_db)
    one.block_until("graph:t", time.time() + 3)
    two.block_until("graph:t", time.time() + 1)
    assert 2.5 < two.blocked_for("graph:t") <= 3
    assert 2.5 < two.acquire("graph:t", rate=100, burst=10) <= 3
    assert one.blocked_for("graph:u") == 0.0
    one.block_until("graph:t", time.time() - 10)  # in the past: nothing to do
    assert redis_db.pttl("ms:limit:{graph:t}:blocked") > 0


@pytest.mark.redis
def test_redis_bucket_counts_across_clients(redis_db: redis.Redis) -> None:
    a, b = RedisLimiter(redis_db), RedisLimiter(redis.Redis(connection_pool=redis_db.connection_pool))
    results = [(a if i % 2 else b).acquire("pc:p", rate=0.001, burst=5) for i in range(8)]
    assert results.count(0.0) == 5


def test_redis_down_is_transient() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    limiter = RedisLimiter(unreachable)
    with pytest.raises(Transient, match="rate limiter unavailable"):
        limiter.acquire("graph:t", rate=1, burst=1)
