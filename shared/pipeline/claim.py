"""The lease: one conditional UPDATE claims a request's current step, so two deliveries never act at once."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

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


def try_claim(session: Session, request_id: str, step_name: str, *, now: datetime,
              lease_seconds: float) -> Claim | None:
    """Take the lease if `step_name` is the current step and nobody holds an unexpired lease.

    `waiting` and `blocked` requests are not claimable: only the reconciler (timer due) or a
    resume (blocker cleared) puts them back to `queued`, so an early duplicate message cannot jump
    a durable timer. The lease end doubles as the reconciler's next look at the request.
    """
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=lease_seconds)
    deliveries = session.scalar(
        update(PR)
        .where(PR.id == request_id, PR.current_step == step_name, PR.state.in_(CLAIMABLE),
               or_(PR.lease_until.is_(None), PR.lease_until < now))
        .values(state=kinds.RUNNING, lease_until=until, lease_owner=token, deliveries=PR.deliveries + 1,
                attempts=PR.attempts + 1, next_attempt_at=until, updated_at=now)
        .returning(PR.deliveries)
        .execution_options(synchronize_session=False))
    if deliveries is None:
        return None
    return Claim(token, int(deliveries))


def start_attempt(session: Session, request_id: str, step_name: str, now: datetime) -> None:
    """The step row says it runs (attempts, first start), in the claim's transaction."""
    session.execute(
        update(RequestStep)
        .where(RequestStep.request_id == request_id, RequestStep.name == step_name)
        .values(state=kinds.STEP_RUNNING, attempts=RequestStep.attempts + 1,
                started_at=func.coalesce(RequestStep.started_at, now), error_code=None, error_message=None)
        .execution_options(synchronize_session=False))


def lease_is_ours(session: Session, request_id: str, token: str) -> bool:
    """Lock the row and check the lease, just before our outcome is written."""
    owner = session.execute(select(PR.lease_owner, PR.state).where(PR.id == request_id).with_for_update()).first()
    return owner is not None and owner[0] == token and owner[1] == kinds.RUNNING


def step_row(session: Session, request_id: str, step_name: str) -> RequestStep | None:
    return session.scalar(select(RequestStep).where(RequestStep.request_id == request_id,
                                                    RequestStep.name == step_name))
