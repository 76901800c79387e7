"""The purchase API's rules: who may see and set purchase policies, and the ledger of a customer."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import audit
from shared.auth import scope
from shared.auth.principal import Principal
from shared.db.models import ServiceProvider
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.purchases import ledger, policy, resume
from shared.purchases.buying import DIRECT
from shared.reading import reading
from shared.requests.dispatch import publish_after_commit


@dataclass(frozen=True)
class PolicyChange:
    enabled: bool
    max_units_per_day: int | None
    max_units_per_order: int | None


def _require_direct(provider: ServiceProvider | None) -> None:
    if provider is None or provider.kind != DIRECT:
        raise StateConflict("not_a_direct_reseller",
                            "only a direct reseller buys seats through the engine; an indirect reseller's "
                            "customers get seats from its distributor")


def customer_policy(uow: UnitOfWork, who: Principal, customer_id: str) -> policy.Policy:
    with reading(uow) as s:
        customer = scope.customer(s, who, customer_id)
        return policy.effective(s, customer.id, customer.service_provider_id)


def set_customer_policy(uow: UnitOfWork, who: Principal, customer_id: str, change: PolicyChange) -> policy.Policy:
    """Set the customer's own policy; requests it blocked resume at once when it now allows buying."""
    with uow:
        s = uow.session
        customer = scope.customer(s, who, customer_id)
        scope.require_manager(who, "change a customer's purchase policy")
        _require_direct(s.get(ServiceProvider, customer.service_provider_id))
        now = utcnow()
        view = policy.put(s, service_provider_id=customer.service_provider_id, customer_id=customer.id,
                          enabled=change.enabled, max_units_per_day=change.max_units_per_day,
                          max_units_per_order=change.max_units_per_order, now=now)
        audit.record(s, who.actor, "customer.purchase_policy.updated", "customer", customer.id, view.view())
        publish_after_commit(uow, resume.resume_customer(s, customer.id, customer.service_provider_id, now))
        uow.commit()
        return view


def provider_policy(uow: UnitOfWork, who: Principal, provider_id: str) -> policy.Policy:
    with reading(uow) as s:
        provider = scope.provider(s, who, provider_id)
        return policy.provider_default(s, provider.id)


def set_provider_policy(uow: UnitOfWork, who: Principal, provider_id: str, change: PolicyChange) -> policy.Policy:
    """The reseller's default, for every customer without a policy of its own."""
    with uow:
        s = uow.session
        provider = scope.provider(s, who, provider_id)
        scope.require_manager(who, "change the reseller's purchase policy")
        _require_direct(provider)
        now = utcnow()
        view = policy.put(s, service_provider_id=provider.id, customer_id=None, enabled=change.enabled,
                          max_units_per_day=change.max_units_per_day,
                          max_units_per_order=change.max_units_per_order, now=now)
        audit.record(s, who.actor, "service_provider.purchase_policy.updated", "service_provider", provider.id,
                     view.view())
        publish_after_commit(uow, resume.resume_provider(s, provider.id, now))
        uow.commit()
        return view


def purchases(uow: UnitOfWork, who: Principal, customer_id: str) -> list[dict[str, Any]]:
    with reading(uow) as s:
        customer = scope.customer(s, who, customer_id)
        return [ledger.view(p) for p in ledger.of_customer(s, customer.id)]
