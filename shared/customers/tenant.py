"""The customer's Azure AD service: find its tenant live through Partner Center, then connect it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit, guards
from shared.auth import scope
from shared.auth.principal import Principal
from shared.customers import live, live_reads
from shared.db.models import (
    Customer,
    CustomerService,
    ProviderCustomerPlan,
    ProvisioningRequest,
    ServiceProvider,
    TenantConnection,
)
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.providers.service import AZURE_AD, PROVISIONED, provider_service_state
from shared.reading import reading
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import create_request, ref

SEARCH_FIELDS = ("Domain", "CompanyName")


@dataclass(frozen=True)
class TenantMatch:
    tenant_id: str
    company_name: str | None
    domain: str | None


def search_tenants(uow: UnitOfWork, who: Principal, customer_id: str, query: str, limit: int) -> list[TenantMatch]:
    """Partner Center customers whose domain or company name starts with `query`, merged, deduplicated."""
    with reading(uow) as s:
        customer = scope.customer(s, who, customer_id)
        scope.require_manager(who, "search tenants")
        provider = s.get(ServiceProvider, customer.service_provider_id)
        assert provider is not None
        client = live.partner_center(provider)

    def search() -> list[TenantMatch]:
        found: dict[str, TenantMatch] = {}
        with live.microsoft_call("searching Partner Center"):
            for field in SEARCH_FIELDS:
                for item in client.search_customers(field, query, size=limit):  # type: ignore[arg-type]
                    match = _match(item)
                    if match.tenant_id:
                        found.setdefault(match.tenant_id, match)
        return sorted(found.values(), key=lambda m: ((m.company_name or "").lower(), m.tenant_id))[:limit]

    # Outside the transaction: no connection is held while Microsoft answers.
    return live_reads.read(customer_id, ("tenant-search", query, limit), search)


def _match(item: dict[str, Any]) -> TenantMatch:
    profile = item.get("companyProfile") or {}
    return TenantMatch(str(profile.get("tenantId") or item.get("id") or ""), profile.get("companyName"),
                       profile.get("domain"))


@dataclass(frozen=True)
class NewTenant:
    """A tenant Partner Center should create: its onmicrosoft.com prefix, company and billing details."""

    domain: str
    company: str
    email: str
    details: dict[str, Any]


def connect_tenant(uow: UnitOfWork, who: Principal, customer_id: str, *, customer_plan_id: str,
                   tenant_id: str | None, new_tenant: NewTenant | None, idem: Idempotency | None,
                   present: Callable[[ProvisioningRequest], Any]) -> Answer:
    """Record the tenant connection (state connecting) and start `customer.azure_ad`."""

    def work(uow: UnitOfWork) -> ProvisioningRequest:
        s = uow.session
        customer = prepare_connection(s, who, customer_id, customer_plan_id, tenant_id, new_tenant)
        service = service_row(s, customer.id, AZURE_AD)
        params = connection_params(customer_plan_id, tenant_id, new_tenant)
        req = create_request(s, kind=kinds.CUSTOMER_AZURE_AD, service_provider_id=customer.service_provider_id,
                             customer_id=customer.id, params=params, created_by=who.key_id)
        service.state, service.request_id = "provisioning", req.id
        audit.record(s, who.actor, "customer.azure_ad.requested", "customer", customer.id,
                     {"request_id": req.id, "tenant_id": tenant_id,
                      "new_tenant_domain": new_tenant.domain if new_tenant else None})
        publish_after_commit(uow, [ref(req)])
        return req

    return answer_once(uow, idem, 202, work, present)


def prepare_connection(s: Session, who: Principal, customer_id: str, customer_plan_id: str,
                       tenant_id: str | None, new_tenant: NewTenant | None) -> Customer:
    """Checks and writes shared by connect and onboard: plan, provider service, the connection row."""
    customer = scope.customer(s, who, customer_id)
    scope.require_manager(who, "connect the customer's tenant")
    if provider_service_state(s, customer.service_provider_id, AZURE_AD) != PROVISIONED:
        raise StateConflict("service_dependency",
                            "the reseller's Azure AD service must be provisioned before customers connect tenants")
    if s.get(ProviderCustomerPlan, (customer.service_provider_id, customer_plan_id)) is None:
        raise StateConflict("plan_not_enabled", f"customer plan {customer_plan_id} is not one the reseller enabled")
    conn = s.scalar(select(TenantConnection).where(TenantConnection.customer_id == customer.id).with_for_update())
    if conn is not None:
        guards.no_active_request(s, _service_request(s, customer.id, AZURE_AD), "the customer's Azure AD service")
        if conn.state == "connected" and conn.tenant_id and conn.tenant_id != tenant_id:
            raise StateConflict("conflict", f"the customer is already connected to tenant {conn.tenant_id}")
    if tenant_id:
        other = s.scalar(select(TenantConnection.customer_id).where(
            TenantConnection.tenant_id == tenant_id, TenantConnection.customer_id != customer.id))
        if other is not None:
            raise StateConflict("conflict", f"tenant {tenant_id} is already connected to another customer")
    if conn is None:
        conn = TenantConnection(customer_id=customer.id, tenant_id=tenant_id or "", state="connecting")
        s.add(conn)
    elif conn.state != "connected":
        conn.tenant_id, conn.state = tenant_id or "", "connecting"
    if new_tenant is not None:
        conn.company_name = new_tenant.company
    customer.customer_plan_id = customer_plan_id
    return customer


def connection_params(customer_plan_id: str, tenant_id: str | None,
                      new_tenant: NewTenant | None) -> dict[str, Any]:
    params: dict[str, Any] = {"customer_plan_id": customer_plan_id}
    if tenant_id:
        params["tenant_id"] = tenant_id
    if new_tenant is not None:
        params["new_tenant"] = {"domain": new_tenant.domain, "company": new_tenant.company,
                                "email": new_tenant.email, **new_tenant.details}
    return params


def _service_request(s: Session, customer_id: str, service: str) -> str | None:
    return s.scalar(select(CustomerService.request_id).where(CustomerService.customer_id == customer_id,
                                                             CustomerService.service == service))


def service_row(s: Session, customer_id: str, service: str) -> CustomerService:
    row = s.scalar(select(CustomerService).where(CustomerService.customer_id == customer_id,
                                                 CustomerService.service == service))
    if row is None:
        row = CustomerService(customer_id=customer_id, service=service)
        s.add(row)
    return row

