"""A tenant Partner Center creates: the Create customer body in Microsoft's shape, and the new tenant's
admin credentials, kept encrypted (RequestSecret) until a reseller reads the request once, then deleted."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.auth.principal import OPERATOR, SERVICE_PROVIDER, Principal
from shared.db.models import ProvisioningRequest, RequestSecret
from shared.security import decrypt, encrypt

ONMICROSOFT = ".onmicrosoft.com"
TENANT_ADMIN = "tenant_admin"
# Our fields (the API's new_tenant.address) -> Partner Center's Address resource.
_ADDRESS = {"address_line1": "addressLine1", "address_line2": "addressLine2", "city": "city", "state": "state",
            "postal_code": "postalCode", "country": "country"}


def initial_domain(spec: dict[str, Any]) -> str:
    """`<prefix>.onmicrosoft.com`: Partner Center wants the whole domain, not the prefix."""
    prefix = str(spec["domain"]).lower().removesuffix(ONMICROSOFT)
    return prefix + ONMICROSOFT


def partner_center_body(spec: dict[str, Any]) -> dict[str, Any]:
    """The Create customer body (POST /v1/customers) from a request's `new_tenant` parameters."""
    address = spec.get("address") or {}
    default_address = {theirs: address.get(ours) for ours, theirs in _ADDRESS.items()}
    default_address.update(firstName=spec.get("first_name"), lastName=spec.get("last_name"),
                           phoneNumber=spec.get("phone"))
    billing = {"email": spec.get("email"), "culture": spec.get("culture", "en-US"),
               "language": spec.get("language", "en"), "companyName": spec.get("company"),
               "firstName": spec.get("first_name"), "lastName": spec.get("last_name"),
               "defaultAddress": {k: v for k, v in default_address.items() if v}}
    return {"companyProfile": {"domain": initial_domain(spec)},
            "billingProfile": {k: v for k, v in billing.items() if v}}


def keep_admin_credentials(session: Session, request_id: str, answer: dict[str, Any], domain: str) -> str | None:
    """Store the new tenant's `userCredentials` encrypted for the request; returns the admin's user name.

    Partner Center names the admin without its domain ("admin"): shown as the UPN it signs in with.
    """
    credentials = answer.get("userCredentials") or {}
    name, password = str(credentials.get("userName") or ""), credentials.get("password")
    if not name or not password:
        return None
    user_name = name if "@" in name else f"{name}@{domain}"
    secret = encrypt(json.dumps({"user_name": user_name, "password": str(password)}))
    if session.get(RequestSecret, (request_id, TENANT_ADMIN)) is None:
        session.add(RequestSecret(request_id=request_id, name=TENANT_ADMIN, secret_enc=secret))
    return user_name


def tenant_result(req: ProvisioningRequest) -> dict[str, Any] | None:
    """What the request says about the tenant it created (no secret): None for other requests."""
    context = req.context or {}
    tenant_id = context.get("created_tenant_id")
    if not tenant_id:
        return None
    return {"tenant_id": tenant_id, "domain": context.get("created_tenant_domain"), "created": True,
            "admin_user_name": context.get("tenant_admin_user_name"), "admin_password": None}


def take_admin_password(session: Session, who: Principal, request_id: str) -> str | None:
    """The admin password, once, for a reseller or operator key; the stored copy is deleted in the caller's
    transaction (commit it before answering). Customer keys never see it, and do not use it up."""
    if who.role not in (OPERATOR, SERVICE_PROVIDER):
        return None
    row = session.scalar(select(RequestSecret).where(RequestSecret.request_id == request_id,
                                                     RequestSecret.name == TENANT_ADMIN).with_for_update())
    if row is None:
        return None
    password = str(json.loads(decrypt(row.secret_enc))["password"])
    session.execute(delete(RequestSecret).where(RequestSecret.request_id == request_id,
                                                RequestSecret.name == TENANT_ADMIN))
    return password
