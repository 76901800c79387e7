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
from shared.customers.licences import refresh_skus
from shared.customers.tenant import service_row
from shared.db.models import PlanEnablement, ProviderUserPlan, ProvisioningRequest, TenantSku, UserPlanLicence
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.providers.service import MICROSOFT_ONLINE, PROVISIONED, provider_service_state
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import create_request, ref
from shared.seats import free


@dataclass(frozen=True)
class PlanChoice:
    user_plan_id: str
    hard_limit: int | None = None


def enable_plans(uow: UnitOfWork, who: Principal, customer_id: str, plans: Sequence[PlanChoice], *,
                 idem: Idempotency | None, present: Callable[[ProvisioningRequest], Any]) -> Answer:
    """Checks in order: tenant connected, reseller's Microsoft Online, plans offered, MCA, the plans' SKUs in
    the tenant; then the request.

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
        check_skus_in_tenant(s, ctx, [p.user_plan_id for p in plans])
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


def check_skus_in_tenant(s: Session, ctx: context.CustomerContext, plan_ids: Sequence[str]) -> None:
    """409 sku_not_in_tenant naming each SKU of the plans the tenant has no subscription for (counts read
    live when the stored ones lack one), rather than failing every user later for want of seats."""
    parts = _plan_skus(s, plan_ids, orderable=ctx.provider_kind == "direct")
    wanted = [p for plan in plan_ids for p in parts.get(plan, [])]
    if free.missing_skus(_tenant_skus(s, ctx.customer_id), wanted):
        refresh_skus(s, ctx.service_provider_id, ctx.customer_id, ctx.require_connected())
    missing = free.missing_skus(_tenant_skus(s, ctx.customer_id), wanted)
    if missing:
        plans = [plan for plan in plan_ids if set(parts.get(plan, [])) & set(missing)]
        raise StateConflict("sku_not_in_tenant", f"the customer's tenant has no subscription for "
                                                 f"{', '.join(missing)} (user plan(s) {', '.join(plans)})",
                            skus=missing, user_plan_ids=plans)


def _plan_skus(s: Session, plan_ids: Sequence[str], *, orderable: bool = False) -> dict[str, list[str]]:
    """The plans' SKUs the tenant must have; with `orderable` (a direct reseller) not those whose licence
    names an offer: buy_seats orders them."""
    found: dict[str, list[str]] = {}
    for plan, part, offer in s.execute(
            select(UserPlanLicence.user_plan_id, UserPlanLicence.sku_part_number, UserPlanLicence.offer_id)
            .where(UserPlanLicence.user_plan_id.in_(list(plan_ids)))):
        if not (orderable and offer):
            found.setdefault(plan, []).append(part)
    return found


def _tenant_skus(s: Session, customer_id: str) -> list[str]:
    # A SKU the sync no longer saw keeps its row with no seats: the tenant does not have it any more.
    return list(s.scalars(select(TenantSku.sku_part_number).where(
        TenantSku.customer_id == customer_id, (TenantSku.total > 0) | (TenantSku.consumed > 0))))


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
