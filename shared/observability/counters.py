"""Cross-process counters (throttled calls per tenant, step retries) kept in Redis so the API can expose them."""
from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

from shared.settings import get_settings

if TYPE_CHECKING:
    import redis

THROTTLED_KEY = "m365p:metrics:throttled_by_tenant"
RETRIES_KEY = "m365p:metrics:retries_by_step"

_local: dict[str, Counter[str]] = {THROTTLED_KEY: Counter(), RETRIES_KEY: Counter()}
_lock = threading.Lock()


def _redis() -> redis.Redis | None:
    url = get_settings().redis_url
    if not url:
        return None
    from shared.redis import get_redis

    return get_redis()


def incr(key: str, field: str, amount: int = 1) -> None:
    """Count one event; never lets a metrics failure disturb the work being counted."""
    try:
        r = _redis()
        if r is not None:
            r.hincrby(key, field, amount)
            return
    except Exception:
        return
    with _lock:
        _local[key][field] += amount


def read(key: str) -> dict[str, int]:
    try:
        r = _redis()
        if r is not None:
            return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in r.hgetall(key).items()}
    except Exception:
        return {}
    with _lock:
        return dict(_local[key])


def throttled(tenant_id: str) -> None:
    incr(THROTTLED_KEY, tenant_id)


def retried(step: str) -> None:
    incr(RETRIES_KEY, step)
