"""INSERT … ON CONFLICT DO UPDATE for PostgreSQL and SQLite alike (concurrent first writes must not fail)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def upsert(session: Session, model: Any, rows: list[dict[str, Any]], *, keys: Sequence[str],
           update: Sequence[str]) -> None:
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(model).values(rows)
    session.execute(stmt.on_conflict_do_update(index_elements=[getattr(model, k) for k in keys],
                                               set_={c: stmt.excluded[c] for c in update}))
