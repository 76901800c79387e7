"""Creating, retrying and cancelling requests; the API and the pipelines share these."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest, RequestStep
from shared.db.types import utcnow
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.seats import ledger


class RequestStateError(Exception):
    """The request is not in a state that allows this (e.g. retrying a succeeded request)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def create_request(session: Session, *, kind: str, service_provider_id: str | None = None,
                   customer_id: str | None = None, user_id: str | None = None, parent_id: str | None = None,
                   params: dict[str, Any] | None = None, created_by: str | None = None) -> ProvisioningRequest:
    """A queued request with one pending row per step of its kind. `params` must never hold a secret."""
    steps = kinds.steps_of(kind)
    req = ProvisioningRequest(kind=kind, state=kinds.QUEUED, service_provider_id=service_provider_id,
                              customer_id=customer_id, user_id=user_id, parent_id=parent_id,
                              params=dict(params or {}), context={}, current_step=steps[0],
                              created_by=created_by, next_attempt_at=None, dispatch=1)
    req.steps = [RequestStep(position=i, name=name, state=kinds.STEP_PENDING) for i, name in enumerate(steps)]
    session.add(req)
    session.flush()
    return req


def ref(req: ProvisioningRequest) -> RequestRef:
    """The chain of the request's current dispatch, from its current step."""
    return RequestRef(id=req.id, kind=req.kind, from_step=req.current_step or kinds.steps_of(req.kind)[0],
                      dispatch=req.dispatch)


def redispatch(req: ProvisioningRequest) -> RequestRef:
    """A new generation for the request's chain, to publish once committed: any message of an earlier
    one still in a queue (or in a worker's hands) stops at its claim."""
    req.dispatch = (req.dispatch or 0) + 1
    return ref(req)


def retry_request(session: Session, req: ProvisioningRequest) -> RequestRef:
    """Re-run a failed (or blocked) request from the step that stopped it."""
    if req.state not in (kinds.FAILED, kinds.BLOCKED):
        raise RequestStateError("request_not_retryable", f"a {req.state} request cannot be retried")
    step = next((s for s in req.steps if s.state not in (kinds.STEP_SUCCEEDED, kinds.STEP_SKIPPED)), None)
    if step is None:
        raise RequestStateError("request_not_retryable", "every step has already succeeded")
    if req.kind == kinds.USER_PROVISION and req.state == kinds.FAILED:
        _rehold_seats(session, req)
    step.state = kinds.STEP_PENDING
    step.error_code = step.error_message = None
    req.current_step = step.name
    req.state = kinds.QUEUED
    req.blocked_reason = req.error_code = req.error_message = None
    req.deliveries = 0
    req.lease_until = req.lease_owner = None
    req.next_attempt_at = req.not_before = None
    req.finished_at = None
    return redispatch(req)


def _rehold_seats(session: Session, req: ProvisioningRequest) -> None:
    """A failed provisioning released its seats; a retry that has not assigned licences yet holds them again."""
    done = {s.name for s in req.steps if s.state == kinds.STEP_SUCCEEDED}
    if "assign_licences" in done or not req.customer_id or not req.user_id:
        return
    from shared.db.models import SeatReservation

    rows = session.scalars(select(SeatReservation).where(SeatReservation.request_id == req.id,
                                                         SeatReservation.state == ledger.RELEASED)).all()
    for r in rows:
        r.state = ledger.HELD


def cancel_request(session: Session, req: ProvisioningRequest, *, now: datetime | None = None) -> None:
    """Stop a request that has not started acting, or that waits; its held seats are released."""
    if req.state not in (kinds.QUEUED, kinds.WAITING, kinds.BLOCKED):
        raise RequestStateError("request_not_cancellable", f"a {req.state} request cannot be cancelled")
    now = now or utcnow()
    req.state = kinds.CANCELLED
    req.finished_at = now
    req.next_attempt_at = None
    req.lease_until = req.lease_owner = None
    for step in req.steps:
        if step.state in (kinds.STEP_PENDING, kinds.STEP_WAITING, kinds.STEP_RUNNING):
            step.state = kinds.STEP_SKIPPED
    ledger.release(session, req.id)
    for child in session.scalars(select(ProvisioningRequest).where(
            ProvisioningRequest.parent_id == req.id,
            ProvisioningRequest.state.in_(list(kinds.ACTIVE_STATES)))):
        cancel_request(session, child, now=now)


def resume_blocked(session: Session, *, customer_id: str, reason: str) -> list[RequestRef]:
    """Requests blocked for `reason` (e.g. mca_not_signed) go back to queued; publish the refs after commit."""
    refs = []
    rows = session.scalars(select(ProvisioningRequest).where(
        ProvisioningRequest.customer_id == customer_id, ProvisioningRequest.state == kinds.BLOCKED,
        ProvisioningRequest.blocked_reason == reason).with_for_update())
    for req in rows:
        refs.append(retry_request(session, req))
    return refs
