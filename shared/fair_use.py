"""Fair use of the API: token buckets per API key and per customer, shared by every API process through Redis.

Each bucket is a GCRA (one "theoretical arrival time" per bucket): `rate` tokens a second, at most
`burst` at once. Both buckets of a call are checked and charged in one Lua script, so a call costs one
Redis round trip, and a call refused by one bucket charges neither. A rate of 0 turns its bucket off.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from shared.errors import RateLimited
from shared.redis import get_redis
from shared.settings import get_settings

log = logging.getLogger("shared.fair_use")

# After Redis failed, calls go unchecked this long before it is tried again.
RETRY_REDIS_AFTER_S = 5.0

# KEYS: the buckets to charge. ARGV: rate, burst for each key, in order. Returns the seconds to wait
# (as a string: Redis truncates Lua numbers in replies), "0" when the call may go ahead.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait, tats = 0, {}
for i, key in ipairs(KEYS) do
  local interval = 1 / tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', key) or '0'), now)
  local over = tat + interval - burst * interval - now
  if over > wait then wait = over end
  tats[i] = tat + interval
end
if wait > 0 then return string.format('%.6f', wait) end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.6f', tats[i]), 'PX', math.ceil((tats[i] - now) * 1000) + 1000)
end
return '0'
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    rate: float
    burst: int


class FairUse:
    """Checks and charges a call's buckets; Redis unreachable lets the call through (logged once)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "api:fair") -> None:
        self._prefix = prefix
        self._take = client.register_script(_TAKE)
        self._failing = False
        self._skip_until = 0.0

    def take(self, buckets: list[Bucket]) -> float:
        """Seconds until the call would be allowed; 0 means it is allowed and was charged."""
        live = [b for b in buckets if b.rate > 0]
        if not live:
            return 0.0
        # One script over two keys: needs a single Redis (as REDIS_URL is), not a Redis Cluster.
        keys = [f"{self._prefix}:{b.key}" for b in live]
        args: list[str] = []
        for b in live:
            args += [repr(float(b.rate)), str(max(1, b.burst))]
        if self._failing and time.monotonic() < self._skip_until:
            return 0.0  # Redis just failed: calls do not each wait out its connect timeout meanwhile
        try:
            reply = self._take(keys=keys, args=args)
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("fair-use limits not enforced: Redis unavailable (%s)", type(exc).__name__)
            self._failing, self._skip_until = True, time.monotonic() + RETRY_REDIS_AFTER_S
            return 0.0
        if self._failing:
            log.info("fair-use limits enforced again: Redis answers")
            self._failing = False
        return float(reply.decode() if isinstance(reply, bytes) else reply)


def buckets_for(key_id: str, customer_id: str | None) -> list[Bucket]:
    s = get_settings()
    found = [Bucket(f"key:{key_id}", s.api_rate_per_key, s.api_burst_per_key)]
    if customer_id:
        found.append(Bucket(f"customer:{customer_id}", s.api_rate_per_customer, s.api_burst_per_customer))
    return found


_lock = threading.Lock()
_limiter: FairUse | None = None
_client: redis.Redis | None = None
_unset_logged = False


def limiter() -> FairUse | None:
    """This process's limiter on the shared Redis (rebuilt when the client is); None without REDIS_URL."""
    global _limiter, _client, _unset_logged
    if not get_settings().redis_url:
        if not _unset_logged:
            log.warning("fair-use limits not enforced: REDIS_URL is not set")
            _unset_logged = True
        return None
    client = get_redis()
    with _lock:
        if _limiter is None or _client is not client:
            _limiter, _client = FairUse(client), client
        return _limiter


def check(key_id: str, customer_id: str | None) -> None:
    """Charge the call to its key's (and customer's) bucket; RateLimited when either is empty."""
    s = get_settings()
    if s.api_rate_per_key <= 0 and (not customer_id or s.api_rate_per_customer <= 0):
        return
    fair = limiter()
    if fair is None:
        return
    wait = fair.take(buckets_for(key_id, customer_id))
    if wait > 0:
        raise RateLimited(f"too many requests; retry in {wait:.1f} s", retry_after=wait)
