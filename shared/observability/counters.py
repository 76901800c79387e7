"""Cross-process counters (429s and blocked time per tenant key, step retries) kept in Redis for the API's metrics."""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING

from shared.settings import get_settings

if TYPE_CHECKING:
    import redis

THROTTLED_KEY = "m365p:metrics:throttled_by_tenant"
BLOCKED_KEY = "m365p:metrics:blocked_seconds_by_tenant"
RETRIES_KEY = "m365p:metrics:retries_by_step"

_local: dict[str, defaultdict[str, float]] = {k: defaultdict(float) for k in (THROTTLED_KEY, BLOCKED_KEY, RETRIES_KEY)}
_lock = threading.Lock()


def _redis() -> redis.Redis | None:
    url = get_settings().redis_url
    if not url:
        return None
    from shared.redis import get_redis

    return get_redis()


def incr(key: str, field: str, amount: float = 1) -> None:
    """Count one event (or seconds); never lets a metrics failure disturb the work being counted."""
    try:
        r = _redis()
        if r is not None:
            if isinstance(amount, int):
                r.hincrby(key, field, amount)
            else:
                r.hincrbyfloat(key, field, amount)
            return
    except Exception:
        return
    with _lock:
        _local[key][field] += amount


def read(key: str) -> dict[str, float]:
    try:
        r = _redis()
        if r is not None:
            return {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in r.hgetall(key).items()}
    except Exception:
        return {}
    with _lock:
        return dict(_local[key])


def throttled(label: str) -> None:
    """A 429 for a limiter key's label (``graph:<tenant hash>``)."""
    incr(THROTTLED_KEY, label)


def blocked(label: str, seconds: float) -> None:
    """Seconds a Retry-After newly closed the key for (the union of the windows, not the sum)."""
    incr(BLOCKED_KEY, label, float(seconds))


def retried(step: str) -> None:
    incr(RETRIES_KEY, step)
