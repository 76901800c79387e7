"""The customer's Microsoft Online service: which user plans it may hand out, with optional hard limits."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit, guards
from shared.auth import scope
from shared.auth.principal import Principal
from shared.customers import context
from shared.customers.tenant import service_row
from shared.db.models import PlanEnablement, ProviderUserPlan, ProvisioningRequest
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.providers.service import MICROSOFT_ONLINE, PROVISIONED, provider_service_state
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import create_request, ref


@dataclass(frozen=True)
class PlanChoice:
    user_plan_id: str
    hard_limit: int | None = None


def enable_plans(uow: UnitOfWork, who: Principal, customer_id: str, plans: Sequence[PlanChoice], *,
                 idem: Idempotency | None, present: Callable[[ProvisioningRequest], Any]) -> Answer:
    """Checks in order: tenant connected, reseller's Microsoft Online, plans offered, MCA; then the request.

    The listed plans are recorded (new ones stay disabled until the pipeline enables them, known
    ones keep their state and take the new hard limit); plans not listed are disabled now.
    """

    def work(uow: UnitOfWork) -> ProvisioningRequest:
        s = uow.session
        ctx = context.load(s, who, customer_id)
        scope.require_manager(who, "enable user plans")
        ctx.require_connected()
        check_offered(s, ctx.service_provider_id, plans)
        ctx.require_mca(s)
        service = service_row(s, customer_id, MICROSOFT_ONLINE)
        guards.no_active_request(s, service.request_id, "the customer's Microsoft Online service")
        record_choices(s, customer_id, plans)
        params = plan_params(plans)
        req = create_request(s, kind=kinds.CUSTOMER_MICROSOFT_ONLINE, service_provider_id=ctx.service_provider_id,
                             customer_id=customer_id, params=params, created_by=who.key_id)
        service.state, service.request_id = "provisioning", req.id
        audit.record(s, who.actor, "customer.microsoft_online.requested", "customer", customer_id,
                     {"request_id": req.id, **params})
        publish_after_commit(uow, [ref(req)])
        return req

    return answer_once(uow, idem, 202, work, present)


def check_offered(s: Session, provider_id: str, plans: Sequence[PlanChoice]) -> None:
    """409 service_dependency before the reseller's Microsoft Online is provisioned; plan_not_enabled for
    a plan the reseller does not offer (unknown ids included)."""
    if provider_service_state(s, provider_id, MICROSOFT_ONLINE) != PROVISIONED:
        raise StateConflict("service_dependency",
                            "the reseller's Microsoft Online service must be provisioned first")
    wanted = [p.user_plan_id for p in plans]
    offered = set(s.scalars(select(ProviderUserPlan.user_plan_id).where(
        ProviderUserPlan.service_provider_id == provider_id, ProviderUserPlan.user_plan_id.in_(wanted))))
    missing = [p for p in wanted if p not in offered]
    if missing:
        raise StateConflict("plan_not_enabled", f"user plan(s) {', '.join(missing)} are not offered by the reseller",
                            user_plan_ids=missing)


def record_choices(s: Session, customer_id: str, plans: Sequence[PlanChoice]) -> None:
    rows = {r.user_plan_id: r for r in s.scalars(select(PlanEnablement).where(
        PlanEnablement.customer_id == customer_id).with_for_update())}
    chosen = {p.user_plan_id: p for p in plans}
    for plan_id, row in rows.items():
        if plan_id not in chosen:
            row.enabled = False
    for plan_id, choice in chosen.items():
        if plan_id in rows:
            rows[plan_id].hard_limit = choice.hard_limit
        else:
            s.add(PlanEnablement(customer_id=customer_id, user_plan_id=plan_id, hard_limit=choice.hard_limit,
                                 enabled=False))


def plan_params(plans: Sequence[PlanChoice]) -> dict[str, Any]:
    unique = {p.user_plan_id: p for p in plans}
    return {"plans": [{"user_plan_id": p.user_plan_id, "hard_limit": p.hard_limit} for p in unique.values()]}
