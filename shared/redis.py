"""One Redis client per process (REDIS_URL), built lazily and rebuilt after fork."""
from __future__ import annotations

import os
import threading

import redis

from shared.settings import get_settings

_lock = threading.Lock()
_client: redis.Redis | None = None
_pid: int | None = None


def get_redis() -> redis.Redis:
    global _client, _pid
    with _lock:
        if _client is None or _pid != os.getpid():
            url = get_settings().redis_url
            if not url:
                raise RuntimeError("REDIS_URL is not set")
            _client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3,
                                           health_check_interval=30)
            _pid = os.getpid()
        return _client


def reset_redis() -> None:
    global _client, _pid
    with _lock:
        _client, _pid = None, None
