"""Per-tenant token buckets and "blocked until" marks, in Redis (all processes) or in-process."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis

from shared.microsoft.errors import Transient
from shared.settings import Settings

# Float time near 1.7e9 s is only exact to ~0.2 µs: a bucket a hair short of a token counts as full,
# and a wait is never shorter than a millisecond (no busy loop on rounding dust).
TOKEN_EPSILON = 1e-6
MIN_WAIT_S = 0.001


class Limiter(Protocol):
    """Throttling state for one key (an API and a tenant or partner, e.g. ``graph:<tenant id>``)."""

    def acquire(self, key: str, rate: float, burst: float) -> float:
        """Take one call slot: 0.0 when taken, else seconds to wait before asking again (nothing taken).

        A key inside its blocked-until window answers the rest of the window.
        """

    def block_until(self, key: str, unix_ts: float) -> None:
        """No call for this key before `unix_ts` (only ever extends an existing block)."""

    def blocked_for(self, key: str) -> float:
        """Seconds left in the key's blocked-until window, 0.0 when not blocked."""


class LocalLimiter:
    """In-process limiter for the embedded default: correct across threads, not across processes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._blocks: dict[str, float] = {}

    def acquire(self, key: str, rate: float, burst: float) -> float:
        with self._lock:
            now = self._clock()
            blocked = self._blocks.get(key, 0.0) - now
            if blocked > 0:
                return blocked
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - last) * rate)
            if tokens >= 1.0 - TOKEN_EPSILON:
                self._buckets[key] = (max(0.0, tokens - 1.0), now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return max(MIN_WAIT_S, (1.0 - tokens) / rate)

    def block_until(self, key: str, unix_ts: float) -> None:
        with self._lock:
            self._blocks[key] = max(self._blocks.get(key, 0.0), unix_ts)

    def blocked_for(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._blocks.get(key, 0.0) - self._clock())


# Redis's own clock is the one clock every process shares, so the scripts read TIME themselves.
# Numbers travel as strings: Redis truncates Lua numbers to integers in replies.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if blocked > now then return tostring(blocked - now) end
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local last = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local wait = 0
if tokens >= 1 - tonumber(ARGV[3]) then tokens = math.max(0, tokens - 1)
else wait = math.max(tonumber(ARGV[4]), (1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 60000)
return tostring(wait)
"""
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local seconds = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + seconds > current then
  redis.call('SET', KEYS[1], tostring(now + seconds), 'PX', math.ceil(seconds * 1000) + 1000)
end
return 1
"""
_BLOCKED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
return tostring(math.max(0, blocked - now))
"""


class RedisLimiter:
    """Limiter shared by every process through Redis (Lua token bucket, server clock)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "ms:limit",
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._prefix = prefix
        self._clock = clock
        self._acquire = client.register_script(_ACQUIRE)
        self._block = client.register_script(_BLOCK)
        self._blocked_for = client.register_script(_BLOCKED_FOR)

    def _keys(self, key: str) -> tuple[str, str]:
        # The hash tag keeps both keys of one limiter key in one Redis Cluster slot.
        return f"{self._prefix}:{{{key}}}:bucket", f"{self._prefix}:{{{key}}}:blocked"

    def acquire(self, key: str, rate: float, burst: float) -> float:
        bucket, blocked = self._keys(key)
        args = [repr(float(rate)), repr(float(burst)), repr(TOKEN_EPSILON), repr(MIN_WAIT_S)]
        return float(self._run(self._acquire, [bucket, blocked], args))

    def block_until(self, key: str, unix_ts: float) -> None:
        # Sent as a duration so the writer's clock skew against Redis does not move the window.
        seconds = unix_ts - self._clock()
        if seconds > 0:
            self._run(self._block, [self._keys(key)[1]], [repr(seconds)])

    def blocked_for(self, key: str) -> float:
        return float(self._run(self._blocked_for, [self._keys(key)[1]], []))

    def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        try:
            return script(keys=keys, args=args)
        except redis.RedisError as exc:
            # Calling Microsoft without the shared limiter would break the etiquette: fail, retryably.
            raise Transient(f"rate limiter unavailable ({type(exc).__name__})") from None


def make_limiter(settings: Settings) -> Limiter:
    """Redis when REDIS_URL is set (every process shares it), else the in-process limiter."""
    if settings.redis_url:
        return RedisLimiter(redis.Redis.from_url(settings.redis_url, socket_timeout=5, health_check_interval=30))
    return LocalLimiter()
