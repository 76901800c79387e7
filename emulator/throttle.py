"""A limit the caller does not know: a token bucket per tenant or partner, Retry-After in whole seconds
as Microsoft sends it, and memory of each announced window to catch (and optionally punish) violations."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .clock import Clock


@dataclass
class Verdict:
    """`retry_after` is None when the call may proceed; `violation` when it ignored an announcement."""

    retry_after: float | None = None
    violation: bool = False


class _Bucket:
    __slots__ = ("blocked_until", "stamp", "tokens", "window")

    def __init__(self, capacity: float, now: float) -> None:
        self.tokens = capacity
        self.stamp = now
        self.blocked_until = 0.0
        self.window = 0.0  # the last announced window, which a violation may grow


class Throttle:
    """Capacity is max(1, rate): a rate of 0.5/s still lets one call through, then one every 2 s.

    A refused call is told to come back when a token will be there, rounded up to whole seconds
    (Graph and Partner Center send integers), and the key stays closed until then. A call inside
    that window is a violation: it is refused with the time left and, with `growth` > 1, restarts
    the window `growth` times longer than the last one (Microsoft throttles harder those who ignore
    it); a call after the window starts afresh.
    """

    def __init__(self, clock: Clock) -> None:
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._clock = clock

    def reset(self) -> None:
        self._buckets.clear()

    def check(self, family: str, key: str, rate: float | None, growth: float = 1.0) -> Verdict:
        if not rate:
            return Verdict()
        now = self._clock.monotonic()
        capacity = max(1.0, rate)
        bucket = self._buckets.get((family, key))
        if bucket is None:
            bucket = self._buckets[(family, key)] = _Bucket(capacity, now)
        if now < bucket.blocked_until:
            if growth > 1.0:
                bucket.window *= growth
                bucket.blocked_until = now + bucket.window
            return Verdict(retry_after=_announce(bucket.blocked_until - now), violation=True)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1 - 1e-9:  # float refill may land a hair under one token
            bucket.tokens -= 1
            return Verdict()
        bucket.window = _announce((1 - bucket.tokens) / rate)
        # A caller that comes back exactly at the announced moment finds the key open again.
        bucket.blocked_until = now + bucket.window
        return Verdict(retry_after=bucket.window)


def _announce(seconds: float) -> float:
    """Whole seconds, rounded up: a client waiting that long is never early."""
    return float(max(1, math.ceil(seconds - 1e-9)))


def header_value(seconds: float) -> str:
    return f"{seconds:.2f}".rstrip("0").rstrip(".") if seconds % 1 else str(int(seconds))
