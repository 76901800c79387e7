"""Audit events: who changed what, when — written in the same transaction as the change."""
from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from shared.db.models import AuditEvent
from shared.db.types import new_id, utcnow


def record(session: Session, actor: str, action: str, object_type: str, object_id: str | None,
           detail: dict[str, Any] | None = None) -> None:
    """One event; `detail` must never hold a secret (passwords, client secrets, keys)."""
    session.add(AuditEvent(actor=actor, action=action, object_type=object_type, object_id=object_id,
                           detail=detail))


def record_many(session: Session, actor: str, action: str, object_type: str,
                objects: Iterable[tuple[str, dict[str, Any] | None]]) -> None:
    """Many events in one statement (bulk calls)."""
    now = utcnow()
    rows = [{"id": new_id(), "at": now, "actor": actor, "action": action, "object_type": object_type,
             "object_id": oid, "detail": detail} for oid, detail in objects]
    if len(rows) == 1:
        session.connection().execute(_insert_stmt(), rows[0])
    elif rows:
        session.connection().execute(_insert_stmt(), rows)  # Core: no per-row ORM work


@cache
def _insert_stmt() -> Insert:
    return insert(cast(Table, AuditEvent.__table__))  # built once: an accept writes one per user
