"""The request store: the statements that claim a request's step, check its lease and write its step row."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import BindParameter, Executable, Row, Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest, RequestStep
from shared.requests import kinds

PR = ProvisioningRequest
CLAIMABLE = (kinds.QUEUED, kinds.RUNNING)
_STEP_COLUMNS = frozenset(RequestStep.__table__.c.keys()) - {"id", "request_id", "name", "position", "duration_ms"}


class LeaseLost(Exception):
    """Another delivery owns the request now (ours expired); our work must not be recorded."""


@dataclass(slots=True)
class StepRow:
    """The step a claim started: its name, this attempt's number, and what the outcome changes.

    The step's row is written with one UPDATE when the outcome is recorded (never loaded)."""

    request_id: str
    name: str
    attempts: int  # counting this attempt
    changes: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: int = 0  # added to the row's duration: active time, summed over attempts

    def set(self, **values: Any) -> None:
        unknown = set(values) - _STEP_COLUMNS
        if unknown:
            raise AttributeError(f"request_steps has no writable column {sorted(unknown)}")
        self.changes.update(values)

    def add_duration(self, elapsed_ms: int) -> None:
        self.elapsed_ms += elapsed_ms


@dataclass(frozen=True, slots=True)
class Claimed:
    deliveries: int
    parent_id: str | None


# The statements below are Core statements on the tables, built once with bind parameters: this runs
# for every link of every chain, and the ORM's bulk-update path and a per-call cache key cost more CPU
# than PostgreSQL spends answering (bench/engine_cpu.py).
REQUESTS, STEPS = cast(Table, PR.__table__), cast(Table, RequestStep.__table__)


@cache
def _claim_stmt(by_dispatch: bool) -> Executable:
    r = REQUESTS.c
    now: BindParameter[datetime] = bindparam("now")
    conditions = [r.id == bindparam("rid"), r.current_step == bindparam("step_name"), r.state.in_(CLAIMABLE),
                  or_(r.lease_until.is_(None), r.lease_until < now), or_(r.not_before.is_(None), r.not_before <= now)]
    if by_dispatch:
        conditions.append(r.dispatch == bindparam("generation"))
    return (update(REQUESTS).where(*conditions)
            .values(state=kinds.RUNNING, lease_until=bindparam("until"), lease_owner=bindparam("token"),
                    deliveries=r.deliveries + 1, attempts=r.attempts + 1, next_attempt_at=bindparam("until"),
                    not_before=None, redrives=0, updated_at=now)
            .returning(r.deliveries, r.parent_id))


def claim(session: Session, request_id: str, step_name: str, dispatch: int | None, *, now: datetime,
          until: datetime, token: str) -> Claimed | None:
    """Take the lease if `step_name` is the current step of this dispatch, nobody holds a live lease and
    the step may start now; counts a delivery. None when any of that does not hold.

    `waiting` and `blocked` requests are not claimable: only the reconciler (timer due) or a resume
    (blocker cleared) queues them again, with a new dispatch, so an early duplicate cannot jump a
    durable timer. The lease end doubles as the reconciler's next look at the request.
    """
    params: dict[str, Any] = {"rid": request_id, "step_name": step_name, "now": now, "until": until,
                              "token": token}
    if dispatch is not None:
        params["generation"] = dispatch
    row = session.execute(_claim_stmt(dispatch is not None), params).first()
    return Claimed(int(row[0]), row[1]) if row is not None else None


@cache
def _start_stmt() -> Executable:
    c = STEPS.c
    return (update(STEPS).where(c.request_id == bindparam("rid"), c.name == bindparam("step_name"))
            .values(state=kinds.STEP_RUNNING, attempts=c.attempts + 1,
                    started_at=func.coalesce(c.started_at, bindparam("now")), error_code=None, error_message=None)
            .returning(c.attempts))


def start_step(session: Session, request_id: str, step_name: str, *, now: datetime) -> int:
    """The step row says it runs (in the claim's transaction); its attempts, counting this one."""
    attempts = session.execute(_start_stmt(), {"rid": request_id, "step_name": step_name, "now": now}).scalar()
    return int(attempts or 0)


@cache
def _lease_stmt() -> Executable:
    r = REQUESTS.c
    return select(r.lease_owner, r.state).where(r.id == bindparam("rid")).with_for_update()


def lease_is_ours(session: Session, request_id: str, token: str) -> bool:
    """Lock the request's row and check the lease: what follows in the transaction is written only while
    it is ours (the lock keeps a re-drive from taking the lease between this check and the commit)."""
    row = session.execute(_lease_stmt(), {"rid": request_id}).first()
    return row is not None and row.lease_owner == token and row.state == kinds.RUNNING


def write_step(session: Session, step: StepRow) -> None:
    """The step's outcome: the columns it changed, and this attempt's active time added to its duration."""
    if not step.changes and not step.elapsed_ms:
        return
    c = STEPS.c
    values: dict[str, Any] = dict(step.changes)
    values["duration_ms"] = func.coalesce(c.duration_ms, 0) + step.elapsed_ms
    session.execute(update(STEPS).where(c.request_id == step.request_id, c.name == step.name).values(values))
    step.changes, step.elapsed_ms = {}, 0


@cache
def _glance_stmt() -> Executable:
    r = REQUESTS.c
    return select(r.dispatch, r.current_step, r.state, r.not_before, r.lease_until).where(r.id == bindparam("rid"))


def glance(session: Session, request_id: str) -> Row[Any] | None:
    """What a refused claim needs to say why (dispatch, current step, state, not_before, lease), without
    loading the request and its steps: a chain's first mailbox probe comes here once per user."""
    return session.execute(_glance_stmt(), {"rid": request_id}).first()


def step_state(session: Session, request_id: str, step_name: str) -> str | None:
    c = STEPS.c
    return session.scalar(select(c.state).where(c.request_id == request_id, c.name == step_name))
