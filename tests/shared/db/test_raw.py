"""shared.db.raw runs a statement on the driver's cursor with the answers and errors SQLAlchemy would give."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import (
    ARRAY,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.db import raw
from shared.db.types import Json, UTCDateTime

meta = MetaData()
things = Table("raw_things", meta, Column("id", String(36), primary_key=True), Column("n", Integer, nullable=False),
               Column("doc", Json), Column("at", UTCDateTime), Column("tag", String(20), default="plain"))
SELECT = select(things.c.id, things.c.n, things.c.doc, things.c.at).where(things.c.id == bindparam("id"))
BUMP = (update(things).where(things.c.id == bindparam("key")).values(n=things.c.n + bindparam("by"))
        .returning(things.c.n, things.c.at))


@pytest.fixture
def conn(pg_engine):  # type: ignore[no-untyped-def]
    with pg_engine.connect() as c:
        things.create(c, checkfirst=True)
        yield c
        c.rollback()


def test_rows_bind_and_convert_as_through_sqlalchemy(conn):  # type: ignore[no-untyped-def]
    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    row = {"id": "a", "n": 1, "doc": {"k": [1, "x"]}, "at": at, "tag": "t"}
    assert raw.execute(conn, insert(things), row).rowcount == 1
    ours = raw.execute(conn, SELECT, {"id": "a"}).all()
    theirs = conn.execute(SELECT, {"id": "a"}).all()
    assert ours == [tuple(r) for r in theirs] == [("a", 1, {"k": [1, "x"]}, at)]
    assert ours[0][3].tzinfo is not None  # the UTC column's result processor ran
    assert raw.execute(conn, BUMP, {"key": "a", "by": 4}).first() == (5, at)
    assert raw.execute(conn, BUMP, {"key": "missing", "by": 1}).first() is None
    assert raw.execute(conn, SELECT, {"id": "missing"}).scalar() is None


def test_an_array_bind_stands_in_for_an_in_list(conn):  # type: ignore[no-untyped-def]
    for i in range(3):
        raw.execute(conn, insert(things), {"id": f"k{i}", "n": i, "doc": None, "at": None, "tag": "x"})
    stmt = select(things.c.id).where(things.c.id == any_(bindparam("ids", type_=ARRAY(String)))).order_by(things.c.id)
    assert raw.execute(conn, stmt, {"ids": ["k2", "k0", "nope"]}).all() == [("k0",), ("k2",)]


def test_what_sqlalchemy_computes_per_execution_is_left_to_it(conn):  # type: ignore[no-untyped-def]
    # `tag` has a Python-side default: only SQLAlchemy's execution fills it in.
    raw.execute(conn, insert(things), {"id": "d", "n": 1, "doc": None, "at": None})
    assert conn.execute(select(things.c.tag).where(things.c.id == "d")).scalar() == "plain"
    expanding = select(things.c.id).where(things.c.id.in_(bindparam("ids", expanding=True)))
    assert raw.execute(conn, expanding, {"ids": ["d"]}).all() == [("d",)]


def test_errors_are_sqlalchemys_and_a_dead_connection_is_invalidated(pg_engine, conn):  # type: ignore[no-untyped-def]
    raw.execute(conn, insert(things), {"id": "dup", "n": 1, "doc": None, "at": None, "tag": "x"})
    with pytest.raises(IntegrityError):
        raw.execute(conn, insert(things), {"id": "dup", "n": 2, "doc": None, "at": None, "tag": "x"})
    conn.rollback()
    with pg_engine.connect() as victim:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(OperationalError):
            raw.execute(victim, SELECT, {"id": "dup"})
        assert victim.invalidated  # the pool will not hand the dead connection out again


def test_other_databases_run_through_sqlalchemy(tmp_path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'raw.db'}")
    with engine.begin() as c:
        things.create(c)
        at = datetime.now(UTC) - timedelta(days=1)
        raw.execute(c, insert(things), {"id": "s", "n": 2, "doc": {"a": 1}, "at": at, "tag": "x"})
        row = raw.execute(c, SELECT, {"id": "s"}).first()
        assert tuple(row) == ("s", 2, {"a": 1}, at)
    engine.dispose()


def test_the_hot_statements_run_raw_on_postgresql(pg_engine):  # type: ignore[no-untyped-def]
    # Each would silently fall back to SQLAlchemy (correct, but the CPU saving gone) if it grew an
    # execution-time default, an expanding IN or an implicit RETURNING.
    from shared.pipeline import claim, finish
    from shared.seats import ledger
    from shared.users import checks, provisioning

    hot = {
        "lock_user": (provisioning._lock_user_stmt(with_plan=True), ("user_id", "plan_id")),
        "lock_skus": (checks._lock_skus_stmt(False, "postgresql"), ("customer_id", "skus")),
        "held": (checks._held_stmt("postgresql"), ("customer_id", "skus")),
        "claim": (claim._claim_stmt(), ("rid", "step_name", "now", "until", "token")),
        "claim_and_start": (claim._claim_and_start_stmt(), ("rid", "step_name", "now", "until", "token",
                                                            "max_deliveries")),
        "start": (claim._start_stmt(), ("req", "step_name", "now")),
        "lease": (claim._lease_stmt(), ("request_id",)),
        "consume": (ledger._consume_stmt(), ("req", "now")),
        "service_state": (finish._service_state_stmt(), ("user", "state", "now")),
        "forget_passwords": (finish._forget_stmt(), ("user", "now")),
        "count_consumed": (ledger._count_consumed_stmt(), ("customer", "sku")),
    }
    fallbacks = [name for name, (stmt, names) in hot.items() if raw._prepare(stmt, pg_engine.dialect, names) is None]
    assert fallbacks == []
