"""The throttling rules of one key (an API and a tenant or partner), as plain Python over `KeyState`.

Microsoft does not publish a tenant's limit, so the configured rate is only a ceiling and the allowed
rate is learned:

- Pacing: a GCRA token bucket at the allowed rate (the burst shrinks with it, keeping the configured
  burst/rate ratio). A caller may reserve a slot up to `max_wait` ahead; a longer wait takes nothing.
- A 429 (or 503 with Retry-After) closes the key until the announced time and drops the allowed rate
  multiplicatively from what was really getting through (the smoothed success rate; the allowed rate
  when fewer than MIN_SUCCESSES calls got through since the last drop), once per drop: calls already
  on the wire when the rate dropped do not drop it again.
- Successes let it climb back additively while the allowed rate is in use: quickly up to
  RECOVER_SHARE of the rate that drew the last 429 (`peak`), slowly across it (each 429 costs the
  tenant a whole Retry-After window, so the climb should not find the limit again too soon), then
  probing above it by PROBE_SLOPE of the current rate per second, so a tenant whose limit grew is
  found again within tens of seconds.
- Concurrency: at most `concurrency` calls in flight (`write_concurrency` of them writes), each
  holding a lease that expires, so a killed process cannot keep a slot for ever.

shared/microsoft/limiter_redis.py states the same rules in Lua; tests run both against one table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

# A 429 leaves this share of what was getting through.
DECREASE = 0.7
# Never below this many calls/s (or the ceiling, if lower): Retry-After windows do the rest.
FLOOR_RATE = 0.2
# Time constant of the smoothed success rate (calls/s) a 429 drops from, and the successes since the
# last drop it needs to mean anything.
SUCCESS_TAU_S = 2.0
MIN_SUCCESSES = 3
# A key's first seconds: the smoothed rate still counts the time before its first success as idle, so
# it is scaled up by 1 / (1 - exp(-age / tau)), by at most 1 / WARMUP_MIN_SHARE (its first half second).
WARMUP_MIN_SHARE = 1 - math.exp(-0.25)
# Climb per second of successful use, as shares of `peak` (below RECOVER_SHARE x peak, then up to it)
# and of the current rate above it.
RECOVER_SHARE = 0.9
FAST_SLOPE = 0.1
NEAR_SLOPE = 0.02
PROBE_SLOPE = 0.1
# One success after an idle spell climbs at most this many seconds' worth.
MAX_CLIMB_GAP_S = 1.0
# Climb only while the successes reach this share of the allowed rate (it is the limit being tested).
UTILISED = 0.5
# A wait below this is no wait (float time near 1.7e9 s is exact to ~0.2 µs).
EPSILON_S = 1e-6
# Learned rates are forgotten after this long without a call (then the ceiling applies again).
STATE_TTL_S = 3600.0

Reason = Literal["ok", "reserved", "busy", "rate", "blocked"]
Outcome = Literal["ok", "throttled", "neutral"]


@dataclass(frozen=True)
class Limits:
    """What one key may do: the configured rate is the ceiling of the learned one."""

    rate: float
    burst: float
    concurrency: int
    write_concurrency: int
    lease_s: float


@dataclass(frozen=True)
class Grant:
    """The answer to an acquire.

    - "ok": a slot is held (`lease`), `started` is the limiter's clock at the grant;
    - "reserved": a rate slot is booked `wait` seconds ahead: wait, then acquire again with `reserved`;
    - "busy": the rate slot is held but `concurrency` calls are in flight: poll with `reserved`;
    - "rate": the next rate slot is more than `max_wait` away (nothing booked); `wait` says how far;
    - "blocked": the key is closed by a Retry-After for `wait` more seconds (nothing booked).
    """

    reason: Reason
    wait: float = 0.0
    lease: str | None = None
    started: float = 0.0

    @property
    def holds_reservation(self) -> bool:
        return self.reason in ("reserved", "busy")


@dataclass
class KeyState:
    rate: float | None = None  # None: the ceiling
    tat: float = 0.0  # GCRA theoretical arrival time
    blocked: float = 0.0
    peak: float | None = None
    drop_at: float = 0.0
    success_rate: float = 0.0
    success_at: float = 0.0
    successes: int = 0  # since the last drop
    first_success_at: float = 0.0
    climb_at: float = 0.0
    used_at: float = 0.0
    calls: dict[str, float] = field(default_factory=dict)  # lease -> expiry
    writes: dict[str, float] = field(default_factory=dict)


def allowed_rate(state: KeyState, ceiling: float) -> float:
    return ceiling if state.rate is None else min(ceiling, state.rate)


def acquire(state: KeyState, limits: Limits, now: float, *, lease: str, write: bool, max_wait: float,
            reserved: bool) -> Grant:
    state.used_at = now
    if state.blocked > now:
        return Grant("blocked", state.blocked - now)
    if not reserved:
        rate = allowed_rate(state, limits.rate)
        interval = 1.0 / rate
        burst = max(1.0, limits.burst * rate / limits.rate)
        tat = max(state.tat, now)
        wait = tat - (burst - 1.0) * interval - now
        if wait > max_wait:
            return Grant("rate", wait)
        state.tat = tat + interval
        if wait > EPSILON_S:
            return Grant("reserved", wait)
    for leases in (state.calls, state.writes):
        for token in [t for t, expiry in leases.items() if expiry <= now]:
            del leases[token]
    if len(state.calls) >= limits.concurrency or (write and len(state.writes) >= limits.write_concurrency):
        return Grant("busy")
    state.calls[lease] = now + limits.lease_s
    if write:
        state.writes[lease] = now + limits.lease_s
    return Grant("ok", lease=lease, started=now)


def release(state: KeyState, limits: Limits, now: float, grant: Grant, outcome: Outcome,
            retry_after: float | None = None) -> float:
    """End a call; returns how many seconds a 429 newly closed the key for (0.0 otherwise)."""
    if grant.lease is not None:
        state.calls.pop(grant.lease, None)
        state.writes.pop(grant.lease, None)
    if outcome == "ok":
        _succeeded(state, limits.rate, now)
    elif outcome == "throttled":
        return _throttled(state, limits.rate, now, grant.started, retry_after or 0.0)
    return 0.0


def _smoothed(state: KeyState, now: float) -> float:
    return state.success_rate * math.exp(-max(0.0, now - state.success_at) / SUCCESS_TAU_S)


def _observed(state: KeyState, now: float) -> float:
    """The smoothed success rate, corrected in the key's first seconds (see WARMUP_MIN_SHARE)."""
    share = 1 - math.exp(-max(0.0, now - state.first_success_at) / SUCCESS_TAU_S)
    return _smoothed(state, now) / max(share, WARMUP_MIN_SHARE)


def _succeeded(state: KeyState, ceiling: float, now: float) -> None:
    state.success_rate = _smoothed(state, now) + 1.0 / SUCCESS_TAU_S
    state.success_at = now
    state.successes += 1
    state.first_success_at = state.first_success_at or now
    rate = allowed_rate(state, ceiling)
    if state.rate is not None and state.peak is not None and rate < ceiling \
            and state.success_rate >= UTILISED * rate:
        dt = min(max(0.0, now - state.climb_at), MAX_CLIMB_GAP_S)
        if rate < RECOVER_SHARE * state.peak:
            slope = FAST_SLOPE * state.peak
        elif rate < state.peak:
            slope = NEAR_SLOPE * state.peak
        else:
            slope = PROBE_SLOPE * rate
        state.rate = min(ceiling, rate + slope * dt)
    state.climb_at = now


def _throttled(state: KeyState, ceiling: float, now: float, started: float, retry_after: float) -> float:
    if started >= state.drop_at:
        floor = min(ceiling, FLOOR_RATE)
        base = allowed_rate(state, ceiling)
        if state.successes >= MIN_SUCCESSES:
            base = min(base, max(_observed(state, now), floor))
        state.peak = base
        state.rate = max(floor, DECREASE * base)
        state.drop_at = now
        state.successes = 0
    until = now + max(0.0, retry_after)
    extension = max(0.0, until - max(state.blocked, now))
    state.blocked = max(state.blocked, until)
    state.tat = max(state.tat, state.blocked)
    return extension
