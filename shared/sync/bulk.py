"""Set-based statements on the users table for sync batches, fast on PostgreSQL and plain on SQLite."""
from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import ColumnElement, String, Table, bindparam, func, literal, select, text, true, update
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.db.models import User, UserService
from shared.db.types import new_id

# On PostgreSQL a batch travels as one array parameter per column (`unnest`), never as thousands of
# parameters: the statement text stays small and constant (psycopg prepares it once), and the plan
# probes the indexes per value even while the table's statistics still describe it as empty.

USERS = cast(Table, User.__table__)
SERVICES = cast(Table, UserService.__table__)
MICROSOFT_ONLINE = "microsoft_online"
# Columns that differ per imported row; the others are the same for the whole batch.
_PER_ROW = ("id", "upn", "display_name", "first_name", "last_name", "usage_location", "aliases", "entra_id",
            "entra_upn", "licences", "matched_user_plan_id")
_SHARED = ("customer_id", "state", "source", "entra_origin", "synced_at", "created_at", "updated_at")
_JSON = frozenset({"aliases", "licences"})


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _array(values: list[Any]) -> Any:
    return bindparam(None, values, type_=ARRAY(String))


def one_of(session: Session, column: Any, values: list[str]) -> ColumnElement[bool]:
    """`column IN values`, as `IN (SELECT unnest(array))` on PostgreSQL."""
    if is_postgres(session):
        return cast(ColumnElement[bool], column.in_(select(func.unnest(_array(values))).scalar_subquery()))
    return cast(ColumnElement[bool], column.in_(values))


def users_by(session: Session, customer_id: str, key: Any, values: list[str], columns: tuple[Any, ...]) -> Any:
    """The customer's users whose `key` column is one of `values` (one row per value at most)."""
    if not is_postgres(session):
        return session.execute(select(*columns).where(USERS.c.customer_id == customer_id, key.in_(values)))
    # A LATERAL probe per value: an index lookup each, however stale the statistics (a join here
    # turns into hashing every user of the customer while a first import is still filling the table).
    wanted = func.unnest(_array(values)).table_valued("value").render_derived(name="wanted")
    probe = (select(*columns).where(USERS.c.customer_id == customer_id, key == wanted.c.value)
             .limit(1).lateral("found"))
    return session.execute(select(*probe.c).select_from(wanted.join(probe, true())))


def analyze_users(session: Session) -> None:
    """Refresh the planner's statistics after a big import (autovacuum would, but only later)."""
    if is_postgres(session):
        session.execute(text("ANALYZE users"))


def insert_users(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    """Insert new users, leaving alone any whose UPN the customer already has; returns the ids that went in."""
    if not rows:
        return []
    if not is_postgres(session):
        stmt = (sqlite_insert(USERS).on_conflict_do_nothing(index_elements=["customer_id", "upn"])
                .returning(USERS.c.id))
        return list(session.connection().execute(stmt, rows).scalars())
    columns = {name: _array([json.dumps(r[name]) if name in _JSON else r[name] for r in rows])
               for name in _PER_ROW}
    table = func.unnest(*columns.values()).table_valued(*_PER_ROW).render_derived(name="batch")
    first = rows[0]
    picked = [func.cast(table.c[n], JSONB) if n in _JSON else table.c[n] for n in _PER_ROW]
    shared = [literal(first[n], type_=USERS.c[n].type) for n in _SHARED]
    stmt = (pg_insert(USERS).from_select([*_PER_ROW, *_SHARED], select(*picked, *shared))
            .on_conflict_do_nothing(index_elements=["customer_id", "upn"]).returning(USERS.c.id))
    return list(session.execute(stmt).scalars())


def update_users(session: Session, rows: list[dict[str, Any]], columns: tuple[str, ...],
                 **same: Any) -> None:
    """Set `columns` per row (row keys `b_id` and `v_<column>`) and `same` on all of them."""
    if not rows:
        return
    # Bind names must differ from column names in an executemany UPDATE.
    stmt = (update(USERS).where(USERS.c.id == bindparam("b_id"))
            .values({**{name: bindparam("v_" + name) for name in columns}, **same}))
    session.connection().execute(stmt, rows)


def provision_services(session: Session, plans: dict[str, str], now: Any) -> None:
    """Give users the sync linked or imported, whose licences match a plan (user id -> plan id), their
    Microsoft Online service, provisioned with that plan, when they have none: they count under the hard
    limits like any other. A user's existing service (a request of the engine's) is left as it is."""
    if not plans:
        return
    # No SELECT first: the unique (user_id, service) index decides, whatever the planner's statistics say.
    if is_postgres(session):
        users = list(plans)
        batch = (func.unnest(_array(users), _array([plans[u] for u in users]))
                 .table_valued("user_id", "user_plan_id").render_derived(name="batch"))
        stamp = literal(now, type_=SERVICES.c.created_at.type)
        rows = select(cast_(func.gen_random_uuid(), String(36)), batch.c.user_id, literal(MICROSOFT_ONLINE),
                      batch.c.user_plan_id, literal("provisioned"), stamp, stamp)
        session.execute(pg_insert(SERVICES).from_select(
            ["id", "user_id", "service", "user_plan_id", "state", "created_at", "updated_at"], rows)
            .on_conflict_do_nothing(index_elements=["user_id", "service"]))
        return
    values = [{"id": new_id(), "user_id": uid, "service": MICROSOFT_ONLINE, "user_plan_id": plan,
               "state": "provisioned", "temp_password_enc": None, "request_id": None, "created_at": now,
               "updated_at": now} for uid, plan in plans.items()]
    session.connection().execute(sqlite_insert(SERVICES).on_conflict_do_nothing(index_elements=["user_id", "service"]),
                                 values)
