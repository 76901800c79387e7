"""Engine and session factory, built lazily once per process (never at import)."""
from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

from sqlalchemy import Dialect, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from shared.settings import get_settings

_lock = threading.Lock()
_engine: Engine | None = None
_factory: sessionmaker[Session] | None = None
_pid: int | None = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL + a busy timeout let API, worker and beat share one SQLite file in the embedded default.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def build_engine(url: str, *, pooled: bool = True) -> Engine:
    """An engine for `url`; `pooled=False` for one-shot work such as migrations."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **({} if pooled else {"poolclass": NullPool}))
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if not pooled:
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_recycle=1800)
    event.listen(engine, "checkin", _mark_idle)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))
    return engine


# A pooled connection idle longer than this is pinged before use (a server restart, a proxy's idle
# timeout). Not every checkout, as `pool_pre_ping` would: that is a round trip per transaction, a
# tenth of an API accept. A connection that dies while in steady use fails one statement; the
# disconnect invalidates the whole pool, so each process loses one transaction (a 503 to retry).
PING_AFTER_IDLE_S = 2.0


def _mark_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: Dialect, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        dialect.do_ping(dbapi_conn)  # what pool_pre_ping runs (outside any transaction)
    except Exception as exc:  # the pool replaces the connection and tries again (SQLAlchemy's recipe)
        raise DisconnectionError("pooled connection is dead") from exc


def get_engine() -> Engine:
    """The process's engine; rebuilt after fork so children never share pooled connections."""
    global _engine, _factory, _pid
    with _lock:
        if _engine is None or _pid != os.getpid():
            _engine = build_engine(get_settings().database_url)
            _factory = sessionmaker(_engine, expire_on_commit=False)
            _pid = os.getpid()
        return _engine


def session_factory() -> sessionmaker[Session]:
    get_engine()
    assert _factory is not None
    return _factory


def dispose_engine() -> None:
    global _engine, _factory, _pid
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine, _factory, _pid = None, None, None
