"""What the checks before any Microsoft work need to know about a customer, read in one query."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.agreements.freshness import require_signed
from shared.auth.principal import Principal
from shared.auth.scope import can_see_customer
from shared.db.models import Agreement, Customer, ServiceProvider, TenantConnection
from shared.errors import ObjectNotFound, StateConflict

CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class CustomerContext:
    customer_id: str
    service_provider_id: str
    provider_kind: str
    tenant_id: str | None
    tenant_state: str | None
    mca_signed: bool

    def require_connected(self) -> str:
        if self.tenant_state != CONNECTED or not self.tenant_id:
            raise StateConflict("tenant_not_connected",
                                "the customer's tenant is not connected (provision its Azure AD service first)")
        return self.tenant_id

    def require_mca(self, session: Session) -> None:
        """409 mca_not_signed; a stored "not signed" older than a minute is read again from Partner Center
        first (shared.agreements.freshness), so an MCA signed in the portal does not refuse the reseller."""
        if not self.mca_signed:
            require_signed(session, self.customer_id, self.service_provider_id, self.require_connected())


def load(session: Session, who: Principal, customer_id: str) -> CustomerContext:
    """The customer's context, or 404 when it does not exist or lies outside the caller's scope."""
    row = session.execute(
        select(Customer.id, Customer.service_provider_id, ServiceProvider.kind, TenantConnection.tenant_id,
               TenantConnection.state, Agreement.signed)
        .join(ServiceProvider, ServiceProvider.id == Customer.service_provider_id)
        .outerjoin(TenantConnection, TenantConnection.customer_id == Customer.id)
        .outerjoin(Agreement, Agreement.customer_id == Customer.id)
        .where(Customer.id == customer_id)).first()
    if row is None or not can_see_customer(who, row[0], row[1]):
        raise ObjectNotFound("customer", customer_id)
    return CustomerContext(row[0], row[1], row[2], row[3], row[4], bool(row[5]))
