"""Requests as callers see them: listing and reading within scope, retry and cancel (published after commit)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from shared import audit
from shared.auth import scope
from shared.auth.principal import Principal
from shared.db.models import ProvisioningRequest
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.paging import Page, fetch_page
from shared.pipeline.finish import FAILED, set_service_state
from shared.reading import reading
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import RequestStateError, cancel_request, retry_request
from shared.tenants import new_tenant


@dataclass(frozen=True)
class RequestDetail:
    """A request as `GET /v1/requests/{id}` shows it: with what it produced (`result`)."""

    request: ProvisioningRequest
    result: dict[str, Any] | None


def list_requests(uow: UnitOfWork, who: Principal, *, state: str | None = None, customer_id: str | None = None,
                  kind: str | None = None, user_id: str | None = None, parent_id: str | None = None,
                  cursor: str | None = None, limit: int = 100) -> Page[ProvisioningRequest]:
    """Newest first."""
    with reading(uow) as s:
        stmt = select(ProvisioningRequest).where(scope.request_clause(who))
        for column, value in ((ProvisioningRequest.state, state), (ProvisioningRequest.customer_id, customer_id),
                              (ProvisioningRequest.kind, kind), (ProvisioningRequest.user_id, user_id),
                              (ProvisioningRequest.parent_id, parent_id)):
            if value:
                stmt = stmt.where(column == value)
        return fetch_page(s, stmt, (ProvisioningRequest.created_at, ProvisioningRequest.id), cursor,
                          limit, descending=True)


def get_request(uow: UnitOfWork, who: Principal, request_id: str) -> RequestDetail:
    """The request and its result; a new tenant's admin password is in it once (the first reseller or
    operator read after Partner Center created the tenant), then deleted."""
    with uow:
        s = uow.session
        req = scope.request(s, who, request_id)
        tenant = new_tenant.tenant_result(req)
        password = new_tenant.take_admin_password(s, who, req.id) if tenant is not None else None
        s.expunge_all()  # what was read stays readable after the commit below
        if tenant is not None and password is not None:
            tenant = {**tenant, "admin_password": password}
            audit.record(s, who.actor, "request.tenant_admin_password.shown", "request", req.id, None)
            uow.commit()
        return RequestDetail(req, {"tenant": tenant} if tenant is not None else None)


def retry(uow: UnitOfWork, who: Principal, request_id: str, *, idem: Idempotency | None,
          present: Callable[[ProvisioningRequest], Any]) -> Answer:
    """Re-run a failed or blocked request from the step that stopped it."""

    def work(uow: UnitOfWork) -> ProvisioningRequest:
        req = scope.request(uow.session, who, request_id, lock=True)
        scope.require_may_act_on(who, req, "retry")
        try:
            again = retry_request(uow.session, req)
        except RequestStateError as exc:
            raise StateConflict(exc.code, str(exc)) from None
        audit.record(uow.session, who.actor, "request.retried", "request", req.id, {"from_step": again.from_step})
        publish_after_commit(uow, [again])
        return req

    return answer_once(uow, idem, 202, work, present)


def cancel(uow: UnitOfWork, who: Principal, request_id: str) -> ProvisioningRequest:
    """Stop a queued, waiting or blocked request; its held seats are released."""
    with uow:
        s = uow.session
        req = scope.request(s, who, request_id, lock=True)
        scope.require_may_act_on(who, req, "cancel")
        try:
            cancel_request(s, req)
        except RequestStateError as exc:
            raise StateConflict(exc.code, str(exc)) from None
        # The service it worked on is not provisioned by it: the hard-limit count must stop holding a place.
        set_service_state(s, req, FAILED)
        audit.record(s, who.actor, "request.cancelled", "request", req.id, None)
        uow.commit()
        return req
