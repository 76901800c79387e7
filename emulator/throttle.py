"""Token buckets per tenant or partner, and memory of each announced Retry-After to catch violations."""
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
    __slots__ = ("blocked_until", "stamp", "tokens")

    def __init__(self, capacity: float, now: float) -> None:
        self.tokens = capacity
        self.stamp = now
        self.blocked_until = 0.0


class Throttle:
    """Capacity is max(1, rate): a rate of 0.5/s still lets one call through, then one every 2 s."""

    def __init__(self, clock: Clock) -> None:
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._clock = clock

    def reset(self) -> None:
        self._buckets.clear()

    def check(self, family: str, key: str, rate: float | None) -> Verdict:
        if not rate:
            return Verdict()
        now = self._clock.monotonic()
        capacity = max(1.0, rate)
        bucket = self._buckets.get((family, key))
        if bucket is None:
            bucket = self._buckets[(family, key)] = _Bucket(capacity, now)
        if now < bucket.blocked_until:
            return Verdict(retry_after=_announce(bucket.blocked_until - now), violation=True)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1 - 1e-9:  # float refill may land a hair under one token
            bucket.tokens -= 1
            return Verdict()
        wait = _announce((1 - bucket.tokens) / rate)
        # The caller may come back exactly at the announced moment, when one token has refilled.
        bucket.blocked_until = now + wait
        return Verdict(retry_after=wait)


def _announce(seconds: float) -> float:
    """Round up to hundredths, as the header carries it; a client waiting that long is never early."""
    return max(0.01, math.ceil(seconds * 100) / 100)


def header_value(seconds: float) -> str:
    return f"{seconds:.2f}".rstrip("0").rstrip(".") if seconds % 1 else str(int(seconds))
