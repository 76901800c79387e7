"""The request store: the statements that claim a request's step, check its lease and write its step row."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
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


def claim(session: Session, request_id: str, step_name: str, dispatch: int | None, *, now: datetime,
          until: datetime, token: str) -> Claimed | None:
    """Take the lease if `step_name` is the current step of this dispatch, nobody holds a live lease and
    the step may start now; counts a delivery. None when any of that does not hold.

    `waiting` and `blocked` requests are not claimable: only the reconciler (timer due) or a resume
    (blocker cleared) queues them again, with a new dispatch, so an early duplicate cannot jump a
    durable timer. The lease end doubles as the reconciler's next look at the request.
    """
    conditions = [PR.id == request_id, PR.current_step == step_name, PR.state.in_(CLAIMABLE),
                  or_(PR.lease_until.is_(None), PR.lease_until < now),
                  or_(PR.not_before.is_(None), PR.not_before <= now)]
    if dispatch is not None:
        conditions.append(PR.dispatch == dispatch)
    row = session.execute(
        update(PR).where(*conditions)
        .values(state=kinds.RUNNING, lease_until=until, lease_owner=token, deliveries=PR.deliveries + 1,
                attempts=PR.attempts + 1, next_attempt_at=until, not_before=None, redrives=0, updated_at=now)
        .returning(PR.deliveries, PR.parent_id)
        .execution_options(synchronize_session=False)).first()
    return Claimed(int(row[0]), row[1]) if row is not None else None


def start_step(session: Session, request_id: str, step_name: str, *, now: datetime) -> int:
    """The step row says it runs (in the claim's transaction); its attempts, counting this one."""
    step = RequestStep
    attempts = session.execute(
        update(step).where(step.request_id == request_id, step.name == step_name)
        .values(state=kinds.STEP_RUNNING, attempts=step.attempts + 1,
                started_at=func.coalesce(step.started_at, now), error_code=None, error_message=None)
        .returning(step.attempts)
        .execution_options(synchronize_session=False)).scalar()
    return int(attempts or 0)


def lease_is_ours(session: Session, request_id: str, token: str) -> bool:
    """Lock the request's row and check the lease: what follows in the transaction is written only while
    it is ours (the lock keeps a re-drive from taking the lease between this check and the commit)."""
    row = session.execute(select(PR.lease_owner, PR.state).where(PR.id == request_id).with_for_update()).first()
    return row is not None and row.lease_owner == token and row.state == kinds.RUNNING


def write_step(session: Session, step: StepRow) -> None:
    """The step's outcome: the columns it changed, and this attempt's active time added to its duration."""
    if not step.changes and not step.elapsed_ms:
        return
    values: dict[str, Any] = dict(step.changes)
    values["duration_ms"] = func.coalesce(RequestStep.duration_ms, 0) + step.elapsed_ms
    session.execute(update(RequestStep)
                    .where(RequestStep.request_id == step.request_id, RequestStep.name == step.name)
                    .values(values).execution_options(synchronize_session=False))
    step.changes, step.elapsed_ms = {}, 0


def step_state(session: Session, request_id: str, step_name: str) -> str | None:
    return session.scalar(select(RequestStep.state).where(RequestStep.request_id == request_id,
                                                          RequestStep.name == step_name))
