"""The adaptive rules on their own (explicit clock), and a simulated tenant whose limit the rules must find."""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import pytest

from emulator.clock import Clock
from emulator.throttle import Throttle
from shared.microsoft import adaptive
from shared.microsoft.adaptive import Grant, KeyState, Limits

LIMITS = Limits(rate=300.0, burst=60.0, concurrency=4, write_concurrency=2, lease_s=40.0)
T0 = 1_700_000_000.0


def call(state: KeyState, now: float, outcome: adaptive.Outcome = "ok", retry_after: float = 1.0,
         limits: Limits = LIMITS) -> float:
    grant = adaptive.acquire(state, limits, now, lease=f"l{now}", write=False, max_wait=1e9, reserved=False)
    if grant.reason != "ok":
        grant = adaptive.acquire(state, limits, now, lease=f"l{now}", write=False, max_wait=1e9, reserved=True)
    assert grant.reason == "ok"
    return adaptive.release(state, limits, now, grant, outcome, retry_after)


def test_the_configured_rate_holds_until_microsoft_objects() -> None:
    state = KeyState()
    for i in range(100):
        call(state, T0 + i * 0.01)
    assert state.rate is None and adaptive.allowed_rate(state, 300.0) == 300.0


def test_a_429_drops_from_what_was_getting_through_not_from_the_ceiling() -> None:
    state = KeyState()
    for i in range(200):  # 20 calls/s for 10 s
        call(state, T0 + i * 0.05)
    assert call(state, T0 + 10, "throttled", 3.0) == pytest.approx(3.0)
    assert state.peak == pytest.approx(20, rel=0.05)
    assert state.rate == pytest.approx(adaptive.DECREASE * 20, rel=0.05)
    assert state.blocked == pytest.approx(T0 + 13)
    assert state.tat >= state.blocked  # nothing was booked inside the window


def test_the_floor_holds_however_often_microsoft_says_no() -> None:
    state = KeyState()
    for i in range(50):
        call(state, T0 + i * 10, "throttled", 1.0)
    assert state.rate == adaptive.FLOOR_RATE
    low = replace(LIMITS, rate=0.1)
    tiny = KeyState()
    call(tiny, T0, "throttled", 1.0, limits=low)
    assert tiny.rate == pytest.approx(0.1)  # never above a ceiling below the floor


def climbed(state: KeyState, seconds: float, per_s: float) -> None:
    start = state.success_at or T0
    for i in range(1, int(seconds * per_s) + 1):
        adaptive.release(state, LIMITS, start + i / per_s, Grant("ok", lease="x"), "ok")


def test_the_climb_is_quick_back_to_the_last_limit_slow_across_it_then_probing() -> None:
    state = KeyState(rate=10.0, peak=20.0, success_rate=10.0, success_at=T0, climb_at=T0)
    climbed(state, 2.0, 10)  # below 0.9 x peak: FAST_SLOPE x peak per second
    assert state.rate == pytest.approx(10 + 2 * adaptive.FAST_SLOPE * 20, rel=0.02)
    state = KeyState(rate=18.5, peak=20.0, success_rate=18.5, success_at=T0, climb_at=T0)
    climbed(state, 2.0, 18.5)  # across it: NEAR_SLOPE x peak per second
    assert state.rate == pytest.approx(18.5 + 2 * adaptive.NEAR_SLOPE * 20, rel=0.02)
    state = KeyState(rate=20.0, peak=20.0, success_rate=20.0, success_at=T0, climb_at=T0)
    climbed(state, 5.0, 20)  # above it: PROBE_SLOPE of the rate per second, compounding
    assert 20 * (1 + adaptive.PROBE_SLOPE) ** 5 * 0.95 < state.rate < 20 * 1.7


def test_no_climb_without_use_nor_past_the_ceiling() -> None:
    state = KeyState(rate=10.0, peak=20.0, success_rate=0.0, success_at=T0, climb_at=T0)
    climbed(state, 10.0, 1)  # one call a second does not test a limit of 10/s
    assert state.rate == 10.0
    idle = KeyState(rate=10.0, peak=20.0, success_rate=10.0, success_at=T0, climb_at=T0)
    adaptive.release(idle, LIMITS, T0 + 3600, Grant("ok", lease="x"), "ok")
    assert idle.rate == 10.0  # an hour idle: the smoothed rate is gone, so nothing to climb on
    near = KeyState(rate=299.0, peak=299.0, success_rate=299.0, success_at=T0, climb_at=T0)
    climbed(near, 3.0, 299)
    assert near.rate == 300.0


def test_burst_follows_the_allowed_rate() -> None:
    state = KeyState(rate=30.0, peak=40.0)
    grants = [adaptive.acquire(state, LIMITS, T0, lease=str(i), write=False, max_wait=0.0, reserved=False)
              for i in range(10)]
    # 60 at 300/s is 0.2 s of calls: at 30/s that is 6.
    assert [g.reason for g in grants].count("ok") == 4  # then the 4 calls in flight stop it
    state = KeyState(rate=30.0, peak=40.0)
    bursts = 0
    for i in range(10):
        grant = adaptive.acquire(state, LIMITS, T0, lease=str(i), write=False, max_wait=0.0, reserved=False)
        if grant.reason == "ok":
            bursts += 1
            adaptive.release(state, LIMITS, T0, grant, "neutral")
    assert bursts == 6


# -- a simulated tenant --------------------------------------------------------------------------------
LATENCY_S = 0.01  # one caller alone can then make 100 calls/s


@dataclass
class Tally:
    ok: list[float] = field(default_factory=list)
    throttled: list[float] = field(default_factory=list)
    violations: int = 0


@dataclass(order=True)
class Event:
    at: float
    seq: int
    worker: int = field(compare=False)
    reserved: bool = field(compare=False, default=False)
    answer: tuple[Grant, float | None] | None = field(compare=False, default=None)  # a response arriving


def simulate(limits_by_time: list[tuple[float, float]], until: float, *, concurrency: int = 4) -> Tally:
    """`concurrency` callers with endless work against an emulator bucket whose rate changes over time.

    Each caller asks the rules for a slot (booking up to the inline wait, as Caller does), sends (the
    bucket judges the call as it is sent) and hands the answer back LATENCY_S later, so a 429 finds
    the other callers' calls on the wire. Times are simulated: the figures are the rules' own.
    """
    clock = Clock()
    clock.freeze()
    origin = clock.monotonic()
    microsoft = Throttle(clock)
    limits = replace(LIMITS, concurrency=concurrency)
    state = KeyState()
    tally = Tally()
    events = [Event(0.0, i, i) for i in range(concurrency)]
    seq = concurrency
    while events:
        event = heapq.heappop(events)
        clock.advance(origin + event.at - clock.monotonic())
        now = event.at
        if now > until:
            break
        seq += 1
        if event.answer is not None:
            grant, retry_after = event.answer
            if retry_after is None:
                adaptive.release(state, limits, T0 + now, grant, "ok")
            else:
                adaptive.release(state, limits, T0 + now, grant, "throttled", retry_after)
            heapq.heappush(events, Event(now, seq, event.worker))
            continue
        got = adaptive.acquire(state, limits, T0 + now, lease=str(seq), write=False, max_wait=2.0,
                               reserved=event.reserved)
        if got.reason != "ok":
            wait = 0.005 if got.reason == "busy" else got.wait
            heapq.heappush(events, Event(now + wait, seq, event.worker, got.holds_reservation))
            continue
        rate = next(r for t, r in reversed(limits_by_time) if t <= now)
        verdict = microsoft.check("graph", "t", rate)
        if verdict.retry_after is None:
            tally.ok.append(now)
        else:
            tally.throttled.append(now)
            tally.violations += verdict.violation
        heapq.heappush(events, Event(now + LATENCY_S, seq, event.worker, answer=(got, verdict.retry_after)))
    return tally


def rate_between(times: list[float], start: float, end: float) -> float:
    return sum(1 for t in times if start <= t < end) / (end - start)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_unknown_limit_is_found_kept_and_followed_both_ways(concurrency: int) -> None:
    tally = simulate([(0, 20.0), (120, 50.0), (180, 5.0)], until=240, concurrency=concurrency)
    calls = len(tally.ok) + len(tally.throttled)
    first = [t for t in tally.throttled if t < 120]
    assert len(first) <= 0.1 * sum(1 for t in tally.ok if t < 120)
    assert tally.violations <= (concurrency - 1) * len(tally.throttled)
    assert rate_between(tally.ok, 10, 120) >= 0.8 * 20
    assert rate_between(tally.ok, 150, 180) >= 0.8 * 50  # up within 30 s
    assert rate_between(tally.ok, 210, 240) >= 0.8 * 5  # and down
    assert rate_between(tally.throttled, 210, 240) <= 0.1 * 5 + 0.2
    assert calls > 0
