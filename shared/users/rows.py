"""Users, their services, requests and seats written as plain rows in a few statements (the accept paths)."""

# The accept paths (every provisioned user, a thousand users per bulk call) write plain rows with Core
# rather than through the ORM's unit of work, and answer from snapshots of the same rows.
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Insert, Table, TextClause, bindparam, insert, text
from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest, RequestStep, SeatReservation, User, UserService
from shared.db.types import new_id, utcnow
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.seats import ledger
from shared.security import encrypt, generate_password
from shared.users.service import MICROSOFT_ONLINE, UserInput


@dataclass(frozen=True)
class NewUser:
    """One accepted user: snapshots of its rows, its request and the password shown once."""

    user: SimpleNamespace
    service: SimpleNamespace
    request: SimpleNamespace
    temporary_password: str


def insert_provisioned_users(s: Session, *, customer_id: str, service_provider_id: str,
                             users: Sequence[UserInput], plans: Sequence[str], created_by: str | None,
                             parent_id: str | None = None) -> list[NewUser]:
    """Users + UserService (provisioning, encrypted password) + a queued `user.provision` request each."""
    now = utcnow()
    steps = kinds.steps_of(kinds.USER_PROVISION)
    out: list[NewUser] = []
    user_rows, service_rows, request_rows, step_rows = [], [], [], []
    for data, plan in zip(users, plans, strict=True):
        user = _user_row(customer_id, data, now)
        password = generate_password()
        request = _request_row(now, kind=kinds.USER_PROVISION, service_provider_id=service_provider_id,
                               customer_id=customer_id, user_id=user["id"], parent_id=parent_id,
                               params={"user_plan_id": plan}, created_by=created_by, first_step=steps[0])
        service = {"id": new_id(), "user_id": user["id"], "service": MICROSOFT_ONLINE, "user_plan_id": plan,
                   "state": "provisioning", "temp_password_enc": encrypt(password), "request_id": request["id"],
                   "created_at": now, "updated_at": now}
        request_steps = [_step_row(request["id"], i, name) for i, name in enumerate(steps)]
        user_rows.append(user)
        service_rows.append(service)
        request_rows.append(request)
        step_rows.extend(request_steps)
        out.append(NewUser(SimpleNamespace(**user), SimpleNamespace(**service),
                           snapshot(request, request_steps), password))
    for table, rows in ((User, user_rows), (ProvisioningRequest, request_rows), (RequestStep, step_rows),
                        (UserService, service_rows)):
        _insert(s, table, rows)
    return out


def reserve_seats(s: Session, customer_id: str, items: Sequence[NewUser], skus: dict[str, list[str]]) -> None:
    """Hold a seat of each SKU of its plan for every accepted user (the caller checked they are free)."""
    now = utcnow()
    _insert(s, SeatReservation, [
        {"id": new_id(), "customer_id": customer_id, "user_id": i.user.id, "request_id": i.request.id,
         "sku_part_number": sku, "state": ledger.HELD, "extra": None, "created_at": now, "updated_at": now}
        for i in items for sku in skus.get(i.service.user_plan_id, [])])


# A request's step rows (five or six) go in one multi-row INSERT: psycopg's executemany runs in
# pipeline mode, which pays off for a bulk call's thousands of rows, not for a handful.
MULTI_ROW_MAX = 16


def _insert(s: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    # Core on the session's connection: none of the ORM's per-statement or per-row work.
    table = cast(Table, model.__table__)
    if 1 < len(rows) <= MULTI_ROW_MAX:
        # Only columns with a value (the rest are NULL anyway): a short statement psycopg caches and prepares.
        columns = tuple(c for c in rows[0] if any(row[c] is not None for row in rows))
        s.connection().execute(_multi_row_stmt(table, columns, len(rows)),
                    {f"p{i}_{j}": row[c] for i, row in enumerate(rows) for j, c in enumerate(columns)})
    elif len(rows) == 1:
        s.connection().execute(_insert_stmt(table), rows[0])
    elif rows:
        s.connection().execute(_insert_stmt(table), rows)


@cache
def _insert_stmt(table: Table) -> Insert:
    return insert(table)


@cache
def _multi_row_stmt(table: Table, columns: tuple[str, ...], n: int) -> TextClause:
    # Plain SQL with typed binds: SQLAlchemy caches its compiled form (a multi-values insert()
    # construct is compiled anew at every call, which costs more than it saves).
    values = ", ".join("(" + ", ".join(f":p{i}_{j}" for j in range(len(columns))) + ")" for i in range(n))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values}"
    return text(sql).bindparams(*(bindparam(f"p{i}_{j}", type_=table.c[c].type)
                                  for i in range(n) for j, c in enumerate(columns)))


def insert_request(s: Session, *, kind: str, service_provider_id: str, customer_id: str, user_id: str,
                   params: dict[str, Any], created_by: str | None) -> SimpleNamespace:
    """One queued request and its pending steps, as two Core statements; returns a snapshot of it."""
    now = utcnow()
    steps = kinds.steps_of(kind)
    request = _request_row(now, kind=kind, service_provider_id=service_provider_id, customer_id=customer_id,
                           user_id=user_id, parent_id=None, params=params, created_by=created_by,
                           first_step=steps[0])
    request_steps = [_step_row(request["id"], i, name) for i, name in enumerate(steps)]
    _insert(s, ProvisioningRequest, [request])
    _insert(s, RequestStep, request_steps)
    return snapshot(request, request_steps)


def hold_seats(s: Session, *, customer_id: str, user_id: str, request_id: str, skus: Sequence[str]) -> None:
    now = utcnow()
    _insert(s, SeatReservation, [
        {"id": new_id(), "customer_id": customer_id, "user_id": user_id, "request_id": request_id,
         "sku_part_number": sku, "state": ledger.HELD, "extra": None, "created_at": now, "updated_at": now}
        for sku in skus])


def ref_of(request: SimpleNamespace) -> RequestRef:
    return RequestRef(id=request.id, kind=request.kind, from_step=request.current_step, dispatch=request.dispatch)


def refs(items: Sequence[NewUser]) -> list[RequestRef]:
    return [ref_of(i.request) for i in items]


def snapshot(request: dict[str, Any], steps: list[dict[str, Any]]) -> SimpleNamespace:
    return SimpleNamespace(**request, steps=[SimpleNamespace(**st) for st in steps])


def _user_row(customer_id: str, data: UserInput, now: datetime) -> dict[str, Any]:
    return {"id": new_id(), "customer_id": customer_id, "upn": data.upn, "first_name": data.first_name,
            "last_name": data.last_name, "display_name": data.shown_name, "usage_location": data.usage_location,
            "aliases": list(data.aliases), "entra_id": None, "entra_upn": None, "state": "active",
            "source": "local", "licences": [], "matched_user_plan_id": None, "synced_at": None,
            "created_at": now, "updated_at": now}


def _request_row(now: datetime, *, kind: str, service_provider_id: str, customer_id: str, user_id: str,
                 parent_id: str | None, params: dict[str, Any], created_by: str | None,
                 first_step: str) -> dict[str, Any]:
    return {"id": new_id(), "kind": kind, "state": kinds.QUEUED, "service_provider_id": service_provider_id,
            "customer_id": customer_id, "user_id": user_id, "parent_id": parent_id, "params": params,
            "context": {}, "current_step": first_step, "attempts": 0, "deliveries": 0, "retries": 0,
            "dispatch": 1, "redrives": 0, "not_before": None,
            "next_attempt_at": None, "lease_until": None, "lease_owner": None, "blocked_reason": None,
            "error_code": None, "error_message": None, "created_by": created_by, "finished_at": None, "created_at": now,
            "updated_at": now}


def _step_row(request_id: str, position: int, name: str) -> dict[str, Any]:
    return {"id": new_id(), "request_id": request_id, "position": position, "name": name,
            "state": kinds.STEP_PENDING, "attempts": 0, "started_at": None, "finished_at": None,
            "duration_ms": None, "error_code": None, "error_message": None, "microsoft_error": None}
