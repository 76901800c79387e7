"""Per-key throttling state (adaptive rate, Retry-After windows, calls in flight): in Redis or in-process."""
from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol

from shared.microsoft import adaptive
from shared.microsoft.adaptive import Grant, KeyState, Limits, Outcome
from shared.settings import Settings

__all__ = ["Grant", "Limiter", "Limits", "LocalLimiter", "key_label", "make_limiter"]


class Limiter(Protocol):
    """Throttling state for one key (an API and a tenant or partner, e.g. ``graph:<tenant id>``).

    The rules are in shared/microsoft/adaptive.py.
    """

    def acquire(self, key: str, limits: Limits, *, write: bool, max_wait: float, reserved: bool) -> Grant:
        """Ask for a call slot (see Grant for the answers)."""

    def release(self, key: str, limits: Limits, grant: Grant, outcome: Outcome,
                retry_after: float | None = None) -> float:
        """End the call `grant` let through: "ok" (Microsoft accepted it, whatever it answered),
        "throttled" (429: close the key for `retry_after`, drop the rate) or "neutral" (no answer,
        5xx). Returns the seconds a 429 newly closed the key for."""

    def blocked_for(self, key: str) -> float:
        """Seconds left in the key's Retry-After window, 0.0 when open."""

    def allowed_rates(self) -> Iterator[tuple[str, float | None]]:
        """(key, learned rate or None for the ceiling) of every key with state."""


def key_label(key: str) -> str:
    """``<api>:<tenant hash>`` for metrics: tenant ids stay out of labels; sha256(tenant id)[:12] finds one."""
    api, _, tenant = key.partition(":")
    return f"{api}:{hashlib.sha256(tenant.encode()).hexdigest()[:12]}"


def new_lease() -> str:
    return uuid.uuid4().hex


class LocalLimiter:
    """In-process limiter for the embedded default: correct across threads, not across processes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, KeyState] = {}

    def _state(self, key: str, now: float) -> KeyState:
        state = self._states.get(key)
        if state is None or now - state.used_at > adaptive.STATE_TTL_S:
            state = self._states[key] = KeyState()
        return state

    def acquire(self, key: str, limits: Limits, *, write: bool, max_wait: float, reserved: bool) -> Grant:
        with self._lock:
            now = self._clock()
            return adaptive.acquire(self._state(key, now), limits, now, lease=new_lease(), write=write,
                                    max_wait=max_wait, reserved=reserved)

    def release(self, key: str, limits: Limits, grant: Grant, outcome: Outcome,
                retry_after: float | None = None) -> float:
        with self._lock:
            now = self._clock()
            return adaptive.release(self._state(key, now), limits, now, grant, outcome, retry_after)

    def blocked_for(self, key: str) -> float:
        with self._lock:
            state = self._states.get(key)
            return max(0.0, state.blocked - self._clock()) if state else 0.0

    def allowed_rates(self) -> Iterator[tuple[str, float | None]]:
        with self._lock:
            rates = [(key, state.rate) for key, state in self._states.items()]
        yield from rates


def make_limiter(settings: Settings) -> Limiter:
    """Redis when REDIS_URL is set (every process shares it), else the in-process limiter."""
    if settings.redis_url:
        import redis

        from shared.microsoft.limiter_redis import RedisLimiter

        return RedisLimiter(redis.Redis.from_url(settings.redis_url, socket_timeout=5, health_check_interval=30))
    return LocalLimiter()
