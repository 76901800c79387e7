"""The customer's Microsoft Online service as the guide's "Advanced Settings" show it: its state and the user plans
it may hand out, each with its hard limit, the users counted against it and the seats left for it."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from shared.auth.principal import Principal
from shared.customers import context
from shared.db.models import CustomerService, PlanEnablement, UserPlan, UserPlanLicence
from shared.db.uow import UnitOfWork
from shared.plans import limits
from shared.reading import reading
from shared.seats import ledger
from shared.seats.free import plan_free_seats

MICROSOFT_ONLINE = "microsoft_online"
NOT_PROVISIONED = "pending"


@dataclass(frozen=True)
class EnabledPlan:
    user_plan_id: str
    name: str
    hard_limit: int | None
    in_use: int
    free_seats: int | None  # the scarcest of its SKUs by the last counts read; None: a plan without licences


@dataclass(frozen=True)
class MicrosoftOnlineView:
    state: str
    plans: list[EnabledPlan]


def microsoft_online(uow: UnitOfWork, who: Principal, customer_id: str) -> MicrosoftOnlineView:
    """Any key that sees the customer (its own customer key too: self-service is bounded by these limits)."""
    with reading(uow) as s:
        context.load(s, who, customer_id)
        state = s.scalar(select(CustomerService.state).where(CustomerService.customer_id == customer_id,
                                                             CustomerService.service == MICROSOFT_ONLINE))
        enabled = s.execute(select(PlanEnablement.user_plan_id, UserPlan.name, PlanEnablement.hard_limit)
                            .join(UserPlan, UserPlan.id == PlanEnablement.user_plan_id)
                            .where(PlanEnablement.customer_id == customer_id, PlanEnablement.enabled.is_(True))
                            .order_by(UserPlan.name)).all()
        ids = [row[0] for row in enabled]
        skus: dict[str, list[str]] = {plan: [] for plan in ids}
        for plan, part in s.execute(select(UserPlanLicence.user_plan_id, UserPlanLicence.sku_part_number)
                                    .where(UserPlanLicence.user_plan_id.in_(ids))):
            skus[plan].append(part)
        used = limits.in_use(s, customer_id, ids)
        free = {seats.sku_part_number: seats.free for seats in ledger.seats(s, customer_id)}
        return MicrosoftOnlineView(state or NOT_PROVISIONED, [
            EnabledPlan(plan, name, limit, used.get(plan, 0), plan_free_seats(free, skus[plan]))
            for plan, name, limit in enabled])
