"""The pool pings a connection that sat idle, and a dead one is replaced before any statement fails."""
from __future__ import annotations

from sqlalchemy import text

from shared.db import engine as db_engine


def backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return int(c.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_killed_by_the_server_is_replaced_on_checkout(pg_url, monkeypatch):
    engine = db_engine.build_engine(pg_url)
    try:
        first = backend_pid(engine)
        admin = db_engine.build_engine(pg_url, pooled=False)
        with admin.connect() as c:  # what a server restart or a proxy's idle timeout does to it
            c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        admin.dispose()
        monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.0)
        assert backend_pid(engine) != first  # no error: pinged, found dead, replaced
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged_an_idle_one_is(pg_url, monkeypatch):
    engine = db_engine.build_engine(pg_url)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or real_ping(conn))
    try:
        for _ in range(5):
            backend_pid(engine)
        assert pings == []  # pool_pre_ping would have sent five
        monkeypatch.setattr(db_engine, "PING_AFTER_IDLE_S", 0.0)
        backend_pid(engine)
        assert len(pings) == 1
    finally:
        engine.dispose()
