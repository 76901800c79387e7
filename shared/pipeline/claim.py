"""The lease: one conditional UPDATE claims a request's current step, so two deliveries never act at once."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from shared.db import raw
from shared.db.models import ProvisioningRequest, RequestStep
from shared.requests import kinds

PR = ProvisioningRequest
CLAIMABLE = (kinds.QUEUED, kinds.RUNNING)


class LeaseLost(Exception):
    """Another delivery owns the request now (ours expired); our work must not be recorded."""


@dataclass(frozen=True)
class Claim:
    token: str
    deliveries: int
    attempts: int = 0  # the step's, counting this one (0 until start_attempt counted it)
    parent_id: str | None = None  # an onboarding child's parent (the engine gates the child on it)
    # The request row as the claim's UPDATE left it, every column (PostgreSQL): see adopt().
    row: dict[str, Any] | None = field(default=None, repr=False)


def try_claim(session: Session, request_id: str, step_name: str, *, now: datetime, lease_seconds: float,
              max_deliveries: int) -> Claim | None:
    """Take the lease if `step_name` is the current step and nobody holds an unexpired lease, and start
    the step's attempt unless the claim is one delivery too many (a poison message: not started).

    `waiting` and `blocked` requests are not claimable: only the reconciler (timer due) or a
    resume (blocker cleared) puts them back to `queued`, so an early duplicate message cannot jump
    a durable timer. The lease end doubles as the reconciler's next look at the request.

    Nothing is committed: a caller that does not keep the claim (a suspect delivery, a gated child)
    rolls it back. On PostgreSQL, claim and start are one statement (an UPDATE in a WITH).
    """
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=lease_seconds)
    # (`rid`, not `request_id`: a parameter named like a column of an UPDATE in the statement is a value
    # to SET, and request_steps has a request_id.)
    params = {"rid": request_id, "step_name": step_name, "now": now, "until": until, "token": token}
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        row = raw.execute(conn, _claim_and_start_stmt(), {**params, "max_deliveries": max_deliveries}).first()
        if row is None:
            return None
        values = dict(zip(_COLUMNS, row[:-1], strict=True))
        return Claim(token, int(values["deliveries"]), int(row[-1] or 0), parent_id=values["parent_id"],
                     row=values)
    row = raw.execute(conn, _claim_stmt(), params).first()
    if row is None:
        return None
    deliveries = int(row[0])
    attempts = start_attempt(session, request_id, step_name, now) if deliveries <= max_deliveries else 0
    return Claim(token, deliveries, attempts, parent_id=row[1])


def adopt(session: Session, claim: Claim) -> ProvisioningRequest | None:
    """The claimed request as a persistent object built from the row the claim returned, as a load of
    it would have been (nothing modified, `steps` not loaded), instead of a SELECT of the row just
    written; None without a returned row or when the session already holds the request."""
    if claim.row is None or (PR, (claim.row["id"],), None) in session.identity_map:
        return None
    req = PR(**claim.row)
    make_transient_to_detached(req)  # its attributes become its loaded state, its history empty
    session.add(req)
    return req


def claim_next(req: ProvisioningRequest, *, now: datetime, lease_seconds: float) -> Claim:
    """Run-on: the lease on the request's next step, set on the row whose outcome this transaction
    records (written only while the lease it replaces is ours), as try_claim would. The step's start
    (start_attempt's writes) is written with the outcome: its `attempts` are 0 until then."""
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=lease_seconds)
    req.state = kinds.RUNNING
    req.lease_owner, req.lease_until, req.next_attempt_at = token, until, until
    req.deliveries = 1  # the outcome just recorded reset them
    req.attempts = (req.attempts or 0) + 1
    req.updated_at = now
    return Claim(token, 1)


def start_attempt(session: Session, request_id: str, step_name: str, now: datetime) -> int:
    """The step row says it runs (attempts, first start), in the claim's transaction; its attempts now."""
    return int(raw.execute(session.connection(), _start_stmt(),
                           {"req": request_id, "step_name": step_name, "now": now}).scalar() or 0)


def lease_is_ours(session: Session, request_id: str, token: str) -> bool:
    """Lock the row and check the lease, just before our outcome is written."""
    owner = raw.execute(session.connection(), _lease_stmt(), {"request_id": request_id}).first()
    return owner is not None and owner[0] == token and owner[1] == kinds.RUNNING


# These run for every step (the lease twice): built once, with bound parameters, and run on the
# session's connection, past the ORM, whose per-statement construction and compilation cost more
# CPU than the database spends on them. Plain tables, so nothing in the session goes stale.
_requests = cast(Table, PR.__table__)
_steps = cast(Table, RequestStep.__table__)
_COLUMNS = tuple(_requests.c.keys())


@cache
def _claim_stmt() -> Executable:
    r = _requests.c
    return cast(Any, _claim_update()).returning(r.deliveries, r.parent_id, r.id)


def _claim_update() -> Executable:
    r = _requests.c
    now, until = bindparam("now", type_=r.updated_at.type), bindparam("until", type_=r.lease_until.type)
    return (update(_requests)
            .where(r.id == bindparam("rid"), r.current_step == bindparam("step_name"),
                   # ORs, not IN: an IN list is expanded at every execution (see shared.db.raw)
                   or_(*(r.state == state for state in CLAIMABLE)), or_(r.lease_until.is_(None), r.lease_until < now))
            .values(state=kinds.RUNNING, lease_until=until, lease_owner=bindparam("token"),
                    deliveries=r.deliveries + 1, attempts=r.attempts + 1, next_attempt_at=until, updated_at=now))


@cache
def _claim_and_start_stmt() -> Executable:
    """WITH c AS (the claim), s AS (the step's start, if claimed within max_deliveries) SELECT the claimed
    row as the claim left it (every column, in the table's order) and the step's attempts."""
    claimed = cast(Any, _claim_update()).returning(*_requests.c).cte("c")
    c = _steps.c
    started = (update(_steps)
               .where(c.request_id == claimed.c.id, c.name == bindparam("step_name"),
                      claimed.c.deliveries <= bindparam("max_deliveries"))
               .values(start_values(bindparam("now", type_=c.started_at.type)))
               .returning(c.attempts).cte("s"))
    return select(*claimed.c, select(started.c.attempts).scalar_subquery())


def start_values(now: Any) -> dict[str, Any]:
    """What a step row says when an attempt starts (`now` a bound parameter)."""
    c = _steps.c
    return {"state": kinds.STEP_RUNNING, "attempts": c.attempts + 1, "started_at": func.coalesce(c.started_at, now),
            "error_code": None, "error_message": None}


@cache
def _start_stmt() -> Executable:
    c = _steps.c
    return (update(_steps)
            .where(c.request_id == bindparam("req"), c.name == bindparam("step_name"))
            .values(start_values(bindparam("now", type_=c.started_at.type)))
            .returning(c.attempts))


@cache
def _lease_stmt() -> Executable:
    r = _requests.c
    return select(r.lease_owner, r.state).where(r.id == bindparam("request_id")).with_for_update()


def step_row(session: Session, request_id: str, step_name: str) -> RequestStep | None:
    return session.scalar(select(RequestStep).where(RequestStep.request_id == request_id,
                                                    RequestStep.name == step_name))
