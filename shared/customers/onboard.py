"""Onboarding in one call: connect the tenant, check GDAP and MCA, enable plans, then provision the users."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared import audit
from shared.auth.principal import Principal
from shared.customers.plans import PlanChoice, check_offered, plan_params, record_choices
from shared.customers.tenant import NewTenant, connection_params, prepare_connection, service_row
from shared.db.models import ProvisioningRequest
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.plans import limits as hard_limits
from shared.providers.service import AZURE_AD, MICROSOFT_ONLINE
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import create_request, ref
from shared.users import bulk, rows


@dataclass(frozen=True)
class Onboarding:
    request: ProvisioningRequest
    users: list[rows.NewUser]


def onboard(uow: UnitOfWork, who: Principal, customer_id: str, *, customer_plan_id: str, tenant_id: str | None,
            new_tenant: NewTenant | None, plans: Sequence[PlanChoice], users: Sequence[bulk.BulkUser],
            idem: Idempotency | None, present: Callable[[Onboarding], Any]) -> Answer:
    """A `customer.onboard` request plus one queued `user.provision` child per user.

    Only the parent is published; the pipeline starts the children once it has succeeded. No
    seats are held now (the tenant's SKUs are unknown until it is connected): the children's
    `reserve_seat` step holds them.
    """

    def work(uow: UnitOfWork) -> Onboarding:
        s = uow.session
        bulk.unique_upns(users)
        customer = prepare_connection(s, who, customer_id, customer_plan_id, tenant_id, new_tenant)
        check_offered(s, customer.service_provider_id, plans)
        limits = {p.user_plan_id: p.hard_limit for p in plans}
        wanted = Counter(u.user_plan_id for u in users)
        outside = sorted(p for p in wanted if p not in limits)
        if outside:
            raise StateConflict("plan_not_enabled", f"user plan(s) {', '.join(outside)} are not among the plans "
                                                    "this onboarding enables", user_plan_ids=outside)
        # The hard limits bind a customer's own keys only (shared.plans.limits), and onboarding needs a
        # reseller's or operator's: asked all the same, so the rule has one home.
        hard_limits.enforce(s, customer.id, wanted, limits, role=who.role)
        bulk.existing_upns(s, customer.id, users)
        record_choices(s, customer.id, plans)
        params = {**connection_params(customer_plan_id, tenant_id, new_tenant), **plan_params(plans)}
        parent = create_request(s, kind=kinds.CUSTOMER_ONBOARD, service_provider_id=customer.service_provider_id,
                                customer_id=customer.id, params=params, created_by=who.key_id)
        for service in (AZURE_AD, MICROSOFT_ONLINE):
            row = service_row(s, customer.id, service)
            row.state, row.request_id = "provisioning", parent.id
        items = rows.insert_provisioned_users(
            s, customer_id=customer.id, service_provider_id=customer.service_provider_id,
            users=[u.data for u in users], plans=[u.user_plan_id for u in users], created_by=who.key_id,
            parent_id=parent.id)
        audit.record(s, who.actor, "customer.onboard.requested", "customer", customer.id,
                     {"request_id": parent.id, "users": len(items), **params})
        audit.record_many(s, who.actor, "user.created", "user",
                          ((i.user.id, {"customer_id": customer.id, "upn": i.user.upn, "request_id": i.request.id,
                                        "parent_id": parent.id}) for i in items))
        publish_after_commit(uow, [ref(parent)])
        return Onboarding(parent, items)

    return answer_once(uow, idem, 202, work, present, secret=True)
