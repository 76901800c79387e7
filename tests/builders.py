"""Builders for seeding the database: resellers, plans, customers with tenants, users, requests."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from shared.db.models import (
    Agreement,
    ApiKey,
    Customer,
    CustomerPlan,
    CustomerService,
    PlanEnablement,
    ProviderCustomerPlan,
    ProviderService,
    ProviderUserPlan,
    ProvisioningRequest,
    ServiceProvider,
    TenantConnection,
    TenantSku,
    User,
    UserPlan,
    UserPlanLicence,
    UserService,
)
from shared.db.types import utcnow
from shared.requests import kinds
from shared.requests.service import create_request
from shared.seats import ledger
from shared.security import encrypt, generate_password

EXCHANGE_STANDARD = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"


def uid() -> str:
    return str(uuid.uuid4())


@dataclass
class Licence:
    sku_part_number: str
    disabled: Sequence[str] = ()


@dataclass
class Sku:
    part: str
    sku_id: str = field(default_factory=uid)
    total: int = 10
    consumed: int = 0
    plans: Sequence[str] = ("EXCHANGE_S_STANDARD",)


class Builder:
    """Adds rows to `session` (flushing, never committing): the caller's transaction decides."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def provider(self, *, pc_tenant_id: str | None = None, client_id: str = "partner-app",
                 client_secret: str = "partner-secret", services: bool = True) -> ServiceProvider:
        sp = ServiceProvider(name=f"Reseller {uid()[:8]}", kind="indirect", pc_tenant_id=pc_tenant_id or uid(),
                             pc_client_id=client_id, pc_client_secret_enc=encrypt(client_secret))
        self.s.add(sp)
        self.s.flush()
        if services:
            for service in ("azure_ad", "microsoft_online"):
                self.s.add(ProviderService(service_provider_id=sp.id, service=service, state="provisioned"))
        return sp

    def customer_plan(self, provider: ServiceProvider | None = None) -> CustomerPlan:
        plan = CustomerPlan(name=f"Customer plan {uid()[:8]}")
        self.s.add(plan)
        self.s.flush()
        if provider is not None:
            self.s.add(ProviderCustomerPlan(service_provider_id=provider.id, customer_plan_id=plan.id))
        return plan

    def user_plan(self, licences: Sequence[Licence], provider: ServiceProvider | None = None) -> UserPlan:
        plan = UserPlan(name=f"User plan {uid()[:8]}")
        plan.licences = [UserPlanLicence(position=i, sku_part_number=lic.sku_part_number,
                                         disabled_service_plans=list(lic.disabled)) for i, lic in enumerate(licences)]
        self.s.add(plan)
        self.s.flush()
        if provider is not None:
            self.s.add(ProviderUserPlan(service_provider_id=provider.id, user_plan_id=plan.id))
        return plan

    def customer(self, provider: ServiceProvider, *, tenant_id: str | None = None, connected: bool = True,
                 initial_domain: str = "contoso.onmicrosoft.com", verified: Sequence[str] = ("contoso.com",),
                 mca_signed: bool = True, skus: Sequence[Sku] = (),
                 plans: Sequence[tuple[UserPlan, int | None]] = ()) -> Customer:
        customer = Customer(service_provider_id=provider.id, name=f"Customer {uid()[:8]}")
        self.s.add(customer)
        self.s.flush()
        if connected:
            self.s.add(TenantConnection(customer_id=customer.id, tenant_id=tenant_id or uid(), state="connected",
                                        initial_domain=initial_domain, gdap_status="active",
                                        verified_domains=sorted({initial_domain, *verified})))
            self.s.add(CustomerService(customer_id=customer.id, service="azure_ad", state="provisioned"))
            # As the Azure AD chain leaves it: just read from Partner Center.
            self.s.add(Agreement(customer_id=customer.id, signed=mca_signed, checked_at=utcnow()))
        for sku in skus:
            self.s.add(TenantSku(customer_id=customer.id, sku_id=sku.sku_id, sku_part_number=sku.part,
                                 total=sku.total, consumed=sku.consumed, service_plans=list(sku.plans)))
        for plan, hard_limit in plans:
            self.s.add(PlanEnablement(customer_id=customer.id, user_plan_id=plan.id, hard_limit=hard_limit,
                                      enabled=True))
        if plans:
            self.s.add(CustomerService(customer_id=customer.id, service="microsoft_online", state="provisioned"))
        self.s.flush()
        return customer

    def user(self, customer: Customer, upn: str, *, plan: UserPlan | None = None, usage_location: str | None = "NL",
             aliases: Sequence[str] = (), password: str | None = None, state: str = "provisioning") -> User:
        local = upn.split("@")[0]
        user = User(customer_id=customer.id, upn=upn.lower(), first_name=local.title(), last_name="Tester",
                    display_name=f"{local.title()} Tester", usage_location=usage_location, aliases=list(aliases))
        self.s.add(user)
        self.s.flush()
        self.s.add(UserService(user_id=user.id, service="microsoft_online", user_plan_id=plan.id if plan else None,
                               state=state, temp_password_enc=encrypt(password or generate_password())))
        self.s.flush()
        return user

    def provision(self, user: User, plan: UserPlan, *, reserve: bool = True, parent_id: str | None = None,
                  created_by: str | None = None, params: dict[str, Any] | None = None) -> ProvisioningRequest:
        """A user.provision request as the API accepts it: the seat reserved, the request queued."""
        customer = self.s.get(Customer, user.customer_id)
        assert customer is not None
        req = create_request(self.s, kind=kinds.USER_PROVISION, service_provider_id=customer.service_provider_id,
                             customer_id=customer.id, user_id=user.id, parent_id=parent_id, created_by=created_by,
                             params={"user_plan_id": plan.id, **(params or {})})
        if reserve:
            ledger.reserve(self.s, customer_id=customer.id, user_id=user.id, request_id=req.id,
                           sku_part_numbers=[lic.sku_part_number for lic in plan.licences])
        service = self.s.query(UserService).filter_by(user_id=user.id).one()
        service.request_id = req.id
        self.s.flush()
        return req

    def request(self, kind: str, *, provider: ServiceProvider | None = None, customer: Customer | None = None,
                user: User | None = None, params: dict[str, Any] | None = None,
                parent_id: str | None = None) -> ProvisioningRequest:
        provider_id = provider.id if provider else customer.service_provider_id if customer else None
        req = create_request(self.s, kind=kind, service_provider_id=provider_id,
                             customer_id=customer.id if customer else None, user_id=user.id if user else None,
                             params=params or {}, parent_id=parent_id)
        self.s.flush()
        return req

    def api_key(self, role: str, scope_id: str | None = None) -> ApiKey:
        key = ApiKey(prefix=uid()[:12], key_hash="x", role=role, scope_id=scope_id)
        self.s.add(key)
        self.s.flush()
        return key
