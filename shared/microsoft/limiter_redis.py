"""The adaptive limiter shared by every process through Redis: shared/microsoft/adaptive.py's rules in Lua."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from string import Template
from typing import Any

import redis

from shared.microsoft import adaptive
from shared.microsoft.adaptive import Grant, Limits, Outcome
from shared.microsoft.errors import Transient
from shared.microsoft.limiter import new_lease

log = logging.getLogger("shared.microsoft")

# Redis's clock is the one clock every process shares, so the scripts read TIME themselves. Numbers
# travel as strings (Redis truncates Lua numbers to integers in replies), with microseconds kept.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function fmt(x) return string.format('%.6f', x) end
local ttl = $ttl_ms
"""

# KEYS: state hash, calls in flight (zset lease -> expiry), writes in flight.
# ARGV: ceiling, burst, concurrency, write concurrency, lease seconds, write?, max wait, reserved?, lease.
_ACQUIRE = _PRELUDE + """
local s = KEYS[1]
local blocked = tonumber(redis.call('HGET', s, 'blocked') or '0')
if blocked > now then return {'blocked', fmt(blocked - now), '', fmt(now)} end
if ARGV[8] == '0' then
  local ceiling = tonumber(ARGV[1])
  local rate = tonumber(redis.call('HGET', s, 'rate') or '')
  if not rate or rate > ceiling then rate = ceiling end
  local interval = 1 / rate
  local burst = math.max(1, tonumber(ARGV[2]) * rate / ceiling)
  local tat = math.max(tonumber(redis.call('HGET', s, 'tat') or '0'), now)
  local wait = tat - (burst - 1) * interval - now
  if wait > tonumber(ARGV[7]) then return {'rate', fmt(wait), '', fmt(now)} end
  redis.call('HSET', s, 'tat', fmt(tat + interval))
  redis.call('PEXPIRE', s, ttl)
  if wait > $epsilon then return {'reserved', fmt(wait), '', fmt(now)} end
end
local write = ARGV[6] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', fmt(now))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3])
    or (write and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4])) then
  return {'busy', '0', '', fmt(now)}
end
local lease_s = tonumber(ARGV[5])
local lease_ms = math.ceil(lease_s * 1000) + 1000
redis.call('ZADD', KEYS[2], fmt(now + lease_s), ARGV[9])
redis.call('PEXPIRE', KEYS[2], lease_ms)
if write then
  redis.call('ZADD', KEYS[3], fmt(now + lease_s), ARGV[9])
  redis.call('PEXPIRE', KEYS[3], lease_ms)
end
return {'ok', '0', ARGV[9], fmt(now)}
"""

# KEYS: as above. ARGV: ceiling, outcome, the grant's start, retry_after, lease.
_RELEASE = _PRELUDE + """
local s = KEYS[1]
if ARGV[5] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
end
local outcome = ARGV[2]
if outcome == 'neutral' then return '0' end
local ceiling = tonumber(ARGV[1])
local h = redis.call('HMGET', s, 'rate', 'peak', 'drop_at', 'success_rate', 'success_at', 'climb_at',
                     'blocked', 'tat', 'successes', 'first_success_at')
local rate, peak = tonumber(h[1] or ''), tonumber(h[2] or '')
local allowed = ceiling
if rate and rate < ceiling then allowed = rate end
local success_at = tonumber(h[5] or '0')
local smoothed = tonumber(h[4] or '0') * math.exp(-math.max(0, now - success_at) / $tau)
if outcome == 'ok' then
  local success_rate = smoothed + 1 / $tau
  local fields = {'success_rate', fmt(success_rate), 'success_at', fmt(now), 'climb_at', fmt(now),
                  'successes', tostring(tonumber(h[9] or '0') + 1)}
  if not h[10] then
    fields[#fields + 1] = 'first_success_at'
    fields[#fields + 1] = fmt(now)
  end
  if rate and peak and allowed < ceiling and success_rate >= $utilised * allowed then
    local dt = math.min(math.max(0, now - tonumber(h[6] or '0')), $max_gap)
    local slope
    if allowed < $recover * peak then slope = $fast * peak
    elseif allowed < peak then slope = $near * peak
    else slope = $probe * allowed end
    fields[#fields + 1] = 'rate'
    fields[#fields + 1] = fmt(math.min(ceiling, allowed + slope * dt))
  end
  redis.call('HSET', s, unpack(fields))
  redis.call('PEXPIRE', s, ttl)
  return '0'
end
if tonumber(ARGV[3]) >= tonumber(h[3] or '0') then
  local floor = math.min(ceiling, $floor)
  local base = allowed
  if tonumber(h[9] or '0') >= $min_successes then
    local share = 1 - math.exp(-math.max(0, now - tonumber(h[10] or '0')) / $tau)
    base = math.min(allowed, math.max(smoothed / math.max(share, $warmup_min_share), floor))
  end
  redis.call('HSET', s, 'peak', fmt(base), 'rate', fmt(math.max(floor, $decrease * base)), 'drop_at', fmt(now),
             'successes', '0')
end
local blocked = tonumber(h[7] or '0')
local closes = now + math.max(0, tonumber(ARGV[4]))
local extension = math.max(0, closes - math.max(blocked, now))
if closes > blocked then blocked = closes end
redis.call('HSET', s, 'blocked', fmt(blocked), 'tat', fmt(math.max(tonumber(h[8] or '0'), blocked)))
redis.call('PEXPIRE', s, ttl)
return fmt(extension)
"""

_BLOCKED_FOR = _PRELUDE + """
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked') or '0')
return fmt(math.max(0, blocked - now))
"""

_CONSTANTS = {
    "ttl_ms": int(adaptive.STATE_TTL_S * 1000), "epsilon": repr(adaptive.EPSILON_S),
    "tau": repr(adaptive.SUCCESS_TAU_S), "min_successes": str(adaptive.MIN_SUCCESSES),
    "warmup_min_share": repr(adaptive.WARMUP_MIN_SHARE),
    "utilised": repr(adaptive.UTILISED), "max_gap": repr(adaptive.MAX_CLIMB_GAP_S),
    "recover": repr(adaptive.RECOVER_SHARE), "fast": repr(adaptive.FAST_SLOPE), "near": repr(adaptive.NEAR_SLOPE),
    "probe": repr(adaptive.PROBE_SLOPE), "floor": repr(adaptive.FLOOR_RATE), "decrease": repr(adaptive.DECREASE),
}


def _script(text: str) -> str:
    return Template(text).substitute(_CONSTANTS)


class RedisLimiter:
    """Limiter shared by every process through Redis (Lua scripts, the server's clock)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "ms:limit") -> None:
        self._redis = client
        self._prefix = prefix
        self._acquire = client.register_script(_script(_ACQUIRE))
        self._release = client.register_script(_script(_RELEASE))
        self._blocked_for = client.register_script(_script(_BLOCKED_FOR))

    def _keys(self, key: str) -> list[str]:
        # The hash tag keeps every key of one limiter key in one Redis Cluster slot.
        base = f"{self._prefix}:{{{key}}}"
        return [f"{base}:state", f"{base}:calls", f"{base}:writes"]

    def acquire(self, key: str, limits: Limits, *, write: bool, max_wait: float, reserved: bool) -> Grant:
        args = [repr(float(limits.rate)), repr(float(limits.burst)), str(limits.concurrency),
                str(limits.write_concurrency), repr(float(limits.lease_s)), "1" if write else "0",
                repr(float(max_wait)), "1" if reserved else "0", new_lease()]
        try:
            reason, wait, lease, started = (_text(v) for v in self._acquire(keys=self._keys(key), args=args))
        except redis.RedisError as exc:
            # Calling Microsoft without the shared state would break the etiquette: fail, retryably.
            raise Transient(f"rate limiter unavailable ({type(exc).__name__})") from None
        return Grant(reason, float(wait), lease or None, float(started))  # type: ignore[arg-type]

    def release(self, key: str, limits: Limits, grant: Grant, outcome: Outcome,
                retry_after: float | None = None) -> float:
        args = [repr(float(limits.rate)), outcome, repr(grant.started), repr(float(retry_after or 0.0)),
                grant.lease or ""]
        try:
            return float(_text(self._release(keys=self._keys(key), args=args)))
        except redis.RedisError as exc:
            # The call is over and may have changed Microsoft: never turn it into an error. The lease
            # runs out by itself; a lost 429 costs one more 429.
            log.warning("limiter release failed for %s (%s)", key, type(exc).__name__)
            return 0.0

    def blocked_for(self, key: str) -> float:
        try:
            return float(_text(self._blocked_for(keys=self._keys(key)[:1])))
        except redis.RedisError as exc:
            raise Transient(f"rate limiter unavailable ({type(exc).__name__})") from None

    def allowed_rates(self) -> Iterator[tuple[str, float | None]]:
        for name in self._redis.scan_iter(match=f"{self._prefix}:{{*}}:state", count=500):
            text = _text(name)
            key = text[text.index("{") + 1:text.rindex("}")]
            rate = self._redis.hget(name, "rate")
            yield key, float(_text(rate)) if rate is not None else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
