"""Scope rules: what a principal may see (else 404, never 403) and which roles may act (else 403)."""

# operator          sees and does everything
# service-provider  its own provider, its customers, their users and every request about them
# customer          its own customer record, its users and their requests (self-service)
from __future__ import annotations

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.orm import Session

from shared.auth.principal import CUSTOMER, OPERATOR, SERVICE_PROVIDER, Principal
from shared.db.models import Customer, ProvisioningRequest, ServiceProvider, User
from shared.errors import NotAllowed, ObjectNotFound


def require_operator(who: Principal, action: str) -> None:
    if who.role != OPERATOR:
        raise NotAllowed(f"only an operator key may {action}")


def require_manager(who: Principal, action: str) -> None:
    """Operator or service provider: the customer-level work a customer key may not do itself."""
    if who.role not in (OPERATOR, SERVICE_PROVIDER):
        raise NotAllowed(f"a customer key may not {action}")


# Who may retry or cancel a request, by the prefix of its kind: a reseller's own services are the
# operator's to drive, a customer's tenant and plans are the reseller's, a user's provisioning anyone's
# in scope (self-service). Seeing a request (request_clause) is wider than acting on it.
KIND_ROLES: dict[str, tuple[str, ...]] = {
    "provider": (OPERATOR,),
    "customer": (OPERATOR, SERVICE_PROVIDER),
    "user": (OPERATOR, SERVICE_PROVIDER, CUSTOMER),
}


def require_may_act_on(who: Principal, req: ProvisioningRequest, action: str) -> None:
    """403 when the key's role may see the request but not `action` it (its kind decides)."""
    allowed = KIND_ROLES.get(req.kind.split(".", 1)[0], (OPERATOR,))
    if who.role not in allowed:
        raise NotAllowed(f"a {who.role} key may not {action} a {req.kind} request "
                         f"({' or '.join(allowed)} only)")


def can_see_provider(who: Principal, provider_id: str) -> bool:
    return who.role == OPERATOR or (who.role == SERVICE_PROVIDER and who.scope_id == provider_id)


def can_see_customer(who: Principal, customer_id: str, provider_id: str) -> bool:
    if who.role == OPERATOR:
        return True
    if who.role == SERVICE_PROVIDER:
        return who.scope_id == provider_id
    return who.role == CUSTOMER and who.scope_id == customer_id


def customer_clause(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on Customer limiting a list to what the principal sees."""
    if who.role == OPERATOR:
        return true()
    if who.role == SERVICE_PROVIDER:
        return Customer.service_provider_id == who.scope_id
    if who.role == CUSTOMER:
        return Customer.id == who.scope_id
    return false()


def request_clause(who: Principal) -> ColumnElement[bool]:
    if who.role == OPERATOR:
        return true()
    if who.role == SERVICE_PROVIDER:
        return ProvisioningRequest.service_provider_id == who.scope_id
    if who.role == CUSTOMER:
        return ProvisioningRequest.customer_id == who.scope_id
    return false()


def provider(session: Session, who: Principal, provider_id: str) -> ServiceProvider:
    row = session.get(ServiceProvider, provider_id) if can_see_provider(who, provider_id) else None
    if row is None:
        raise ObjectNotFound("service provider", provider_id)
    return row


def customer(session: Session, who: Principal, customer_id: str) -> Customer:
    row = session.get(Customer, customer_id)
    if row is None or not can_see_customer(who, row.id, row.service_provider_id):
        raise ObjectNotFound("customer", customer_id)
    return row


def user(session: Session, who: Principal, user_id: str) -> tuple[User, Customer]:
    row = session.get(User, user_id)
    cust = session.get(Customer, row.customer_id) if row else None
    if row is None or cust is None or not can_see_customer(who, cust.id, cust.service_provider_id):
        raise ObjectNotFound("user", user_id)
    return row, cust


def request(session: Session, who: Principal, request_id: str, *, lock: bool = False) -> ProvisioningRequest:
    row = session.get(ProvisioningRequest, request_id, with_for_update=lock or None)
    if row is None or not _sees_request(who, row):
        raise ObjectNotFound("request", request_id)
    return row


def _sees_request(who: Principal, req: ProvisioningRequest) -> bool:
    if who.role == OPERATOR:
        return True
    if who.role == SERVICE_PROVIDER:
        return req.service_provider_id == who.scope_id
    return who.role == CUSTOMER and req.customer_id == who.scope_id
