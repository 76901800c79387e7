"""The limiter's behaviour, the same table in-process and in Redis (the Lua twin of adaptive.py)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.microsoft import adaptive
from shared.microsoft.errors import Transient
from shared.microsoft.limiter import Grant, Limiter, LocalLimiter, key_label, make_limiter
from shared.microsoft.limiter_redis import RedisLimiter
from shared.settings import Settings
from tests.shared.microsoft.ms_fakes import LIMITS, close_key

FAST = replace(LIMITS, rate=1000.0, burst=1000.0)


@pytest.fixture(params=["local", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[Limiter]:
    if request.param == "local":
        yield LocalLimiter()
        return
    yield RedisLimiter(request.getfixturevalue("limiter_redis"), prefix="test:limit")


def take(limiter: Limiter, key: str = "graph:t", limits: adaptive.Limits = FAST, *, write: bool = False,
         max_wait: float = 0.0, reserved: bool = False) -> Grant:
    return limiter.acquire(key, limits, write=write, max_wait=max_wait, reserved=reserved)


def rate_of(limiter: Limiter, key: str) -> float | None:
    return dict(limiter.allowed_rates()).get(key)


def test_bucket_bursts_then_books_slots_ahead(limiter: Limiter) -> None:
    limits = replace(LIMITS, rate=10.0, burst=3.0)
    assert [take(limiter, limits=limits).reason for _ in range(3)] == ["ok"] * 3
    too_far = take(limiter, limits=limits, max_wait=0.01)
    assert too_far.reason == "rate" and 0.05 < too_far.wait <= 0.1  # nothing booked
    booked = take(limiter, limits=limits, max_wait=1.0)
    assert booked.reason == "reserved" and 0.05 < booked.wait <= 0.1
    assert booked.holds_reservation
    after = take(limiter, limits=limits, max_wait=1.0)
    assert after.reason == "reserved" and 0.15 < after.wait <= 0.2  # the next one queues behind it
    assert take(limiter, limits=limits, reserved=True).reason == "ok"  # the booked slot is honoured
    assert take(limiter, "graph:other", limits=limits).reason == "ok"  # keys are independent


def test_concurrency_counts_calls_in_flight_and_writes_apart(limiter: Limiter) -> None:
    limits = replace(FAST, concurrency=3, write_concurrency=1)
    write = take(limiter, limits=limits, write=True)
    assert write.reason == "ok" and write.lease
    assert take(limiter, limits=limits, write=True).reason == "busy"  # one write at a time
    reads = [take(limiter, limits=limits) for _ in range(2)]
    assert [g.reason for g in reads] == ["ok", "ok"]
    busy = take(limiter, limits=limits)
    assert busy.reason == "busy" and busy.holds_reservation  # the rate slot stays booked while it polls
    limiter.release("graph:t", limits, reads[0], "ok")
    assert take(limiter, limits=limits, reserved=True).reason == "ok"
    limiter.release("graph:t", limits, write, "neutral")
    assert take(limiter, limits=limits, write=True).reason == "ok"  # the write slot is free again
    assert take(limiter, limits=limits).reason == "busy"  # and three calls are in flight
    assert take(limiter, "graph:u", limits=limits, write=True).reason == "ok"


def test_a_lease_runs_out_so_a_dead_process_frees_its_slot(limiter: Limiter) -> None:
    limits = replace(FAST, concurrency=1, lease_s=0.3)
    assert take(limiter, limits=limits).reason == "ok"  # never released: its process died
    assert take(limiter, limits=limits).reason == "busy"
    time.sleep(0.4)
    assert take(limiter, limits=limits).reason == "ok"


def test_a_429_closes_the_key_and_drops_the_rate_once_per_drop(limiter: Limiter) -> None:
    key = "graph:t"
    for _ in range(20):
        limiter.release(key, FAST, take(limiter), "ok")
    assert rate_of(limiter, key) is None  # the ceiling until Microsoft says otherwise
    in_flight = [take(limiter) for _ in range(3)]
    assert limiter.release(key, FAST, in_flight[0], "throttled", 5.0) == pytest.approx(5.0, abs=0.2)
    dropped = rate_of(limiter, key)
    # From what was getting through (20 calls just now, smoothed), not from the 1000/s ceiling.
    assert dropped is not None and adaptive.FLOOR_RATE <= dropped < 100
    assert 4.5 < limiter.blocked_for(key) <= 5.0
    closed = take(limiter)
    assert closed.reason == "blocked" and 4.5 < closed.wait <= 5.0 and not closed.holds_reservation
    # The other calls were already on the wire at the old rate: their 429s extend nothing, drop nothing.
    assert limiter.release(key, FAST, in_flight[1], "throttled", 1.0) == 0.0
    assert rate_of(limiter, key) == dropped
    assert limiter.release(key, FAST, in_flight[2], "throttled", 7.0) == pytest.approx(2.0, abs=0.2)
    assert 6.5 < limiter.blocked_for(key) <= 7.0  # a window only ever grows
    assert rate_of(limiter, key) == dropped
    assert limiter.blocked_for("graph:other") == 0.0


def test_a_429_for_a_call_sent_after_the_drop_drops_again(limiter: Limiter) -> None:
    key = "graph:t"
    for _ in range(20):
        limiter.release(key, FAST, take(limiter), "ok")
    close_key(limiter, key, 0.05, FAST)
    first = rate_of(limiter, key)
    time.sleep(0.1)
    close_key(limiter, key, 0.05, FAST)
    second = rate_of(limiter, key)
    assert first is not None and second is not None
    assert adaptive.FLOOR_RATE < second < first


def test_neutral_outcomes_change_nothing_but_the_slot(limiter: Limiter) -> None:
    limits = replace(FAST, concurrency=1)
    grant = take(limiter, limits=limits)
    limiter.release("graph:t", limits, grant, "neutral")
    assert rate_of(limiter, "graph:t") is None and limiter.blocked_for("graph:t") == 0.0
    assert take(limiter, limits=limits).reason == "ok"


def test_allowed_rates_lists_the_keys_with_state(limiter: Limiter) -> None:
    close_key(limiter, "exchange:t1", 0.01, FAST)
    limiter.release("graph:t2", FAST, take(limiter, "graph:t2"), "ok")
    rates = dict(limiter.allowed_rates())
    assert set(rates) >= {"exchange:t1", "graph:t2"}
    assert rates["graph:t2"] is None and rates["exchange:t1"] is not None


def test_key_labels_hash_the_tenant() -> None:
    label = key_label("graph:22222222-2222-2222-2222-222222222222")
    assert label.startswith("graph:") and len(label) == len("graph:") + 12 and "2222" not in label
    assert key_label("graph:a") != key_label("exchange:a") and key_label("graph:a") == key_label("graph:a")


def test_make_limiter_follows_redis_url(limiter_redis_url: str) -> None:
    assert isinstance(make_limiter(Settings(environment="test", redis_url=None)), LocalLimiter)
    assert isinstance(make_limiter(Settings(environment="test", redis_url=limiter_redis_url)), RedisLimiter)


def test_redis_down_fails_the_call_retryably_but_never_a_finished_one() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    limiter = RedisLimiter(unreachable)
    with pytest.raises(Transient, match="rate limiter unavailable"):
        take(limiter)
    # The call is over (it may have created something): a lost release must not make it an error.
    assert limiter.release("graph:t", FAST, Grant("ok", lease="x", started=time.time()), "ok") == 0.0


def test_without_successes_to_go_by_a_429_drops_from_the_allowed_rate(limiter: Limiter) -> None:
    close_key(limiter, "graph:t", 0.01, FAST)
    assert rate_of(limiter, "graph:t") == pytest.approx(adaptive.DECREASE * FAST.rate)
    time.sleep(0.02)
    close_key(limiter, "graph:t", 0.01, FAST)
    assert rate_of(limiter, "graph:t") == pytest.approx(adaptive.DECREASE ** 2 * FAST.rate)


def test_successes_after_a_drop_climb_back(limiter: Limiter) -> None:
    key = "graph:t"
    for _ in range(20):
        limiter.release(key, FAST, take(limiter), "ok")
    close_key(limiter, key, 0.01, FAST)
    dropped = rate_of(limiter, key)
    assert dropped is not None
    time.sleep(0.02)
    for _ in range(25):
        limiter.release(key, FAST, take(limiter), "ok")
        time.sleep(0.02)
    climbed = rate_of(limiter, key)
    assert climbed is not None and dropped < climbed < FAST.rate
