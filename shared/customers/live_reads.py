"""Live reads that cost Microsoft calls (agreement, tenant search, licences): cached briefly and bounded per customer.

A page polling the agreement, or a script searching in a loop, would otherwise cost one Partner Center
call each time and eat the reseller's Microsoft quota that provisioning needs. Results live
LIVE_READ_CACHE_S seconds in this process (a cache per API process: a few processes cost a few calls
per period, and nothing to serialise); at most LIVE_READS_PER_CUSTOMER reads of one customer run at
once in this process, the next one is refused with 429 rather than queued behind Microsoft.
Callers check the caller's scope first: only Microsoft's answer is cached, never an authorisation.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from shared.errors import RateLimited
from shared.settings import get_settings

T = TypeVar("T")

# The bound refuses, it does not queue: a live read takes about a second, so try again after one.
BUSY_RETRY_AFTER_S = 1.0
# Expired entries are swept when the cache grows past this (each entry is one customer's small answer).
SWEEP_AT = 1000

_lock = threading.Lock()
_cache: dict[tuple[str, Hashable], tuple[float, Any]] = {}
_running: Counter[str] = Counter()


def read(customer_id: str, key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`'s answer for (customer, key), from the cache when it is fresh; errors are not cached."""
    settings = get_settings()
    entry = (customer_id, key)
    with _lock:
        hit = _cache.get(entry)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        bound = settings.live_reads_per_customer
        if bound and _running[customer_id] >= bound:
            raise RateLimited(f"{bound} live reads of this customer are already running; retry shortly",
                              retry_after=BUSY_RETRY_AFTER_S)
        _running[customer_id] += 1
    try:
        value = compute()
    finally:
        with _lock:
            _running[customer_id] -= 1
            if _running[customer_id] <= 0:
                del _running[customer_id]
    if settings.live_read_cache_s > 0:
        with _lock:
            now = time.monotonic()
            if len(_cache) >= SWEEP_AT:
                for stale in [k for k, (expires, _) in _cache.items() if expires <= now]:
                    del _cache[stale]
            _cache[entry] = (now + settings.live_read_cache_s, value)
    return value


def forget(customer_id: str) -> None:
    """Drop the customer's cached answers (after a change this process made, e.g. recording the agreement)."""
    with _lock:
        for entry in [k for k in _cache if k[0] == customer_id]:
            del _cache[entry]


def forget_all() -> None:
    with _lock:
        _cache.clear()
