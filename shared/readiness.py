"""Readiness: can this process reach the database and the broker right now?"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy import Engine, text

from shared.db.engine import build_engine, get_engine
from shared.settings import get_settings

TIMEOUT_S = 2.0
_broker_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def check() -> dict[str, str]:
    """{"database": "ok" | why, "broker": "ok" | why}."""
    return {"database": _guard(check_database), "broker": _guard(check_broker)}


def _guard(fn: Callable[[], None]) -> str:
    try:
        fn()
    except Exception as exc:  # readiness reports any failure, it never raises
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return "ok"


def check_database() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def check_broker() -> None:
    url = get_settings().broker_url
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    elif url.startswith("sqla+"):
        db_url = url[len("sqla+"):]
        if db_url.startswith("postgresql://"):  # psycopg 3 is the driver we ship, as for DATABASE_URL
            db_url = "postgresql+psycopg://" + db_url.split("://", 1)[1]
        with _broker_engine(db_url).connect() as conn:
            conn.execute(text("SELECT 1"))
    elif url.startswith(("amqp://", "pyamqp://")):
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname or "localhost", parts.port or 5672), timeout=TIMEOUT_S):
            pass
    # memory:// lives in this process: always reachable


def _broker_engine(url: str) -> Engine:
    with _lock:
        if url not in _broker_engines:
            _broker_engines[url] = build_engine(url, pooled=False)
        return _broker_engines[url]
