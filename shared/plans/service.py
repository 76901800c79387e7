"""Creating and listing plans; non-operators see the plans their scope can use."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.auth import scope
from shared.auth.principal import CUSTOMER, SERVICE_PROVIDER, Principal
from shared.db.models import (
    Customer,
    CustomerPlan,
    PlanEnablement,
    ProviderCustomerPlan,
    ProviderUserPlan,
    UserPlan,
    UserPlanLicence,
)
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.reading import reading


@dataclass(frozen=True)
class LicenceInput:
    sku_part_number: str
    disabled_service_plans: list[str] = field(default_factory=list)
    offer_id: str | None = None  # the catalog item a direct reseller orders for a tenant without the SKU


def create_customer_plan(uow: UnitOfWork, who: Principal, *, name: str, description: str | None,
                         idem: Idempotency | None, present: Callable[[CustomerPlan], Any]) -> Answer:
    scope.require_operator(who, "create customer plans")

    def work(uow: UnitOfWork) -> CustomerPlan:
        _unique_name(uow.session, CustomerPlan, name)
        row = CustomerPlan(name=name, description=description)
        uow.session.add(row)
        uow.session.flush()
        audit.record(uow.session, who.actor, "customer_plan.created", "customer_plan", row.id, {"name": name})
        return row

    return answer_once(uow, idem, 201, work, present)


def create_user_plan(uow: UnitOfWork, who: Principal, *, name: str, description: str | None,
                     licences: Sequence[LicenceInput], idem: Idempotency | None,
                     present: Callable[[UserPlan], Any]) -> Answer:
    scope.require_operator(who, "create user plans")

    def work(uow: UnitOfWork) -> UserPlan:
        _unique_name(uow.session, UserPlan, name)
        row = UserPlan(name=name, description=description, licences=[
            UserPlanLicence(position=i, sku_part_number=lic.sku_part_number,
                            disabled_service_plans=list(lic.disabled_service_plans), offer_id=lic.offer_id)
            for i, lic in enumerate(licences)])
        uow.session.add(row)
        uow.session.flush()
        audit.record(uow.session, who.actor, "user_plan.created", "user_plan", row.id,
                     {"name": name, "skus": [lic.sku_part_number for lic in licences]})
        return row

    return answer_once(uow, idem, 201, work, present)


def list_customer_plans(uow: UnitOfWork, who: Principal) -> list[CustomerPlan]:
    with reading(uow) as s:
        stmt = select(CustomerPlan).order_by(CustomerPlan.name)
        if who.role == SERVICE_PROVIDER:
            stmt = stmt.join(ProviderCustomerPlan, ProviderCustomerPlan.customer_plan_id == CustomerPlan.id).where(
                ProviderCustomerPlan.service_provider_id == who.scope_id)
        elif who.role == CUSTOMER:
            stmt = stmt.join(Customer, Customer.customer_plan_id == CustomerPlan.id).where(
                Customer.id == who.scope_id)
        return list(s.scalars(stmt))


def list_user_plans(uow: UnitOfWork, who: Principal) -> list[UserPlan]:
    with reading(uow) as s:
        stmt = select(UserPlan).order_by(UserPlan.name)
        if who.role == SERVICE_PROVIDER:
            stmt = stmt.join(ProviderUserPlan, ProviderUserPlan.user_plan_id == UserPlan.id).where(
                ProviderUserPlan.service_provider_id == who.scope_id)
        elif who.role == CUSTOMER:
            stmt = stmt.join(PlanEnablement, PlanEnablement.user_plan_id == UserPlan.id).where(
                PlanEnablement.customer_id == who.scope_id, PlanEnablement.enabled.is_(True))
        return list(s.scalars(stmt))


def _unique_name(session: Session, model: Any, name: str) -> None:
    if session.scalar(select(model.id).where(model.name == name)) is not None:
        raise StateConflict("conflict", f"a plan named {name!r} already exists")
