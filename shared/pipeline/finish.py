"""What follows a request's end (service states, seats, onboarding children, notices) or its block."""
from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import cast

from sqlalchemy import Executable, Table, bindparam, null, select, update
from sqlalchemy.orm import Session

from shared.db.models import CustomerService, ProviderService, ProvisioningRequest, UserService
from shared.db.types import utcnow
from shared.notifications import outbox
from shared.notifications.announce import announce
from shared.notifications.recipients import BLOCKED
from shared.notifications.recipients import FAILED as FAILED_EVENT
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.requests.service import redispatch
from shared.seats import ledger

PROVISIONED, FAILED = "provisioned", "failed"

_PROVIDER_SERVICE = {kinds.PROVIDER_AZURE_AD: "azure_ad", kinds.PROVIDER_MICROSOFT_ONLINE: "microsoft_online"}
_CUSTOMER_SERVICES = {kinds.CUSTOMER_AZURE_AD: ("azure_ad",),
                      kinds.CUSTOMER_MICROSOFT_ONLINE: ("microsoft_online",),
                      kinds.CUSTOMER_ONBOARD: ("azure_ad", "microsoft_online")}
_USER_SERVICE_END = {kinds.USER_PROVISION: "provisioned", kinds.USER_DEPROVISION: "deprovisioned"}


def set_service_state(session: Session, req: ProvisioningRequest, state: str) -> None:
    """The reseller, customer or user service this request works on; a provisioned one stays provisioned."""
    rows: list[ProviderService | CustomerService] = []
    if req.kind in _PROVIDER_SERVICE and req.service_provider_id:
        rows.extend(session.scalars(select(ProviderService).where(
            ProviderService.service_provider_id == req.service_provider_id,
            ProviderService.service == _PROVIDER_SERVICE[req.kind])))
    elif req.kind in _CUSTOMER_SERVICES and req.customer_id:
        rows.extend(session.scalars(select(CustomerService).where(
            CustomerService.customer_id == req.customer_id,
            CustomerService.service.in_(_CUSTOMER_SERVICES[req.kind]))))
    elif req.kind in _USER_SERVICE_END and req.user_id:
        # One plain statement (it ends every user request), not a load of the user's services and a
        # flush of each, nor an ORM bulk UPDATE (which costs the worker several times what it costs
        # the database).
        session.connection().execute(_service_state_stmt(), {
            "user": req.user_id, "state": _USER_SERVICE_END[req.kind] if state == PROVISIONED else FAILED,
            "now": utcnow()})
    for row in rows:
        if state == PROVISIONED or row.state != PROVISIONED:
            row.state = state


def on_succeeded(session: Session, req: ProvisioningRequest, *, now: datetime) -> list[RequestRef]:
    """Mark the service; an onboarding parent's users start now (the reconciler is the backstop)."""
    set_service_state(session, req, PROVISIONED)
    if req.kind != kinds.CUSTOMER_ONBOARD:
        return []  # only an onboarding request has children (shared.customers.onboard): no query per user
    children = session.scalars(select(ProvisioningRequest).where(
        ProvisioningRequest.parent_id == req.id, ProvisioningRequest.state == kinds.QUEUED)).all()
    for child in children:
        child.next_attempt_at = now
    return [redispatch(c) for c in children]


def fail_request(session: Session, req: ProvisioningRequest, code: str, message: str, *, now: datetime) -> None:
    """Fail a request that is not running a step (poison, parent failed): its current step says why."""
    step = next((s for s in req.steps if s.name == req.current_step), None)
    if step is not None:
        step.state = kinds.STEP_FAILED
        step.finished_at = now
        step.error_code, step.error_message = code, message
    req.state = kinds.FAILED
    req.error_code = code
    req.error_message = f"{step.name}: {message}" if step is not None else message
    req.finished_at = now
    req.next_attempt_at = req.lease_until = req.lease_owner = None
    req.updated_at = now
    on_failed(session, req, now=now)


def on_failed(session: Session, req: ProvisioningRequest, *, now: datetime) -> None:
    ledger.release(session, req.id)
    set_service_state(session, req, FAILED)
    _forget_password_once_created(session, req)
    outbox.enqueue(session, outbox.WEBHOOK, "request.failed", outbox.request_payload(req))
    announce(session, req, FAILED_EVENT)
    children = session.scalars(select(ProvisioningRequest).where(
        ProvisioningRequest.parent_id == req.id,
        ProvisioningRequest.state.in_(list(kinds.ACTIVE_STATES)))).all()
    for child in children:
        fail_request(session, child, "parent_failed", f"onboarding request {req.id} failed", now=now)


def on_blocked(session: Session, req: ProvisioningRequest) -> None:
    """A person must act (MCA, GDAP, seats): the customer's recipients (or the reseller's) are told what to do."""
    announce(session, req, BLOCKED)


def _forget_password_once_created(session: Session, req: ProvisioningRequest) -> None:
    # Before the user exists a retry still needs the password; once created it never will.
    if req.kind != kinds.USER_PROVISION or not req.user_id or not (req.context or {}).get("user_created"):
        return
    forget_held_passwords(session, req.user_id)


def forget_held_passwords(session: Session, user_id: str) -> None:
    """Wipe the temporary passwords the user's services hold, in one plain statement."""
    session.connection().execute(_forget_stmt(), {"user": user_id, "now": utcnow()})


_services = cast(Table, UserService.__table__)


@cache
def _service_state_stmt() -> Executable:
    c = _services.c
    return update(_services).where(c.user_id == bindparam("user")).values(
        state=bindparam("state", type_=c.state.type), updated_at=bindparam("now", type_=c.updated_at.type))


@cache
def _forget_stmt() -> Executable:
    c = _services.c
    return update(_services).where(c.user_id == bindparam("user"), c.temp_password_enc.is_not(None)).values(
        temp_password_enc=null(), updated_at=bindparam("now", type_=c.updated_at.type))
