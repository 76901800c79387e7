"""Creating, listing and reading customers within the caller's scope."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from shared import audit
from shared.auth import scope
from shared.auth.principal import Principal
from shared.db.models import Agreement, Customer, CustomerService, TenantConnection
from shared.db.uow import UnitOfWork
from shared.idempotency import Answer, Idempotency, answer_once
from shared.paging import Page, fetch_page
from shared.reading import reading


@dataclass(frozen=True)
class CustomerView:
    """A customer with its tenant connection, services and last-known agreement (detail only)."""

    customer: Customer
    tenant: TenantConnection | None
    services: list[CustomerService] | None = None
    agreement: Agreement | None = None


def create_customer(uow: UnitOfWork, who: Principal, *, name: str, service_provider_id: str,
                    idem: Idempotency | None, present: Callable[[CustomerView], Any]) -> Answer:
    scope.require_manager(who, "create customers")

    def work(uow: UnitOfWork) -> CustomerView:
        s = uow.session
        scope.provider(s, who, service_provider_id)
        row = Customer(name=name, service_provider_id=service_provider_id)
        s.add(row)
        s.flush()
        audit.record(s, who.actor, "customer.created", "customer", row.id,
                     {"name": name, "service_provider_id": service_provider_id})
        return CustomerView(row, None, [], None)

    return answer_once(uow, idem, 201, work, present)


def list_customers(uow: UnitOfWork, who: Principal, *, service_provider_id: str | None = None,
                   name_prefix: str | None = None, cursor: str | None = None,
                   limit: int = 100) -> Page[CustomerView]:
    with reading(uow) as s:
        stmt = select(Customer).where(scope.customer_clause(who))
        if service_provider_id:
            stmt = stmt.where(Customer.service_provider_id == service_provider_id)
        if name_prefix:
            stmt = stmt.where(Customer.name.startswith(name_prefix, autoescape=True))
        page = fetch_page(s, stmt, (Customer.name, Customer.id), cursor, limit)
        ids = [c.id for c in page.items]
        tenants = {t.customer_id: t for t in s.scalars(
            select(TenantConnection).where(TenantConnection.customer_id.in_(ids)))} if ids else {}
        return Page([CustomerView(c, tenants.get(c.id)) for c in page.items], page.next_cursor)


def get_customer(uow: UnitOfWork, who: Principal, customer_id: str) -> CustomerView:
    with reading(uow) as s:
        row = scope.customer(s, who, customer_id)
        tenant = s.scalar(select(TenantConnection).where(TenantConnection.customer_id == row.id))
        services = list(s.scalars(select(CustomerService).where(CustomerService.customer_id == row.id)
                                  .order_by(CustomerService.service)))
        agreement = s.scalar(select(Agreement).where(Agreement.customer_id == row.id))
        return CustomerView(row, tenant, services, agreement)
