"""The emulated cloud: registered partner apps, tenants, delta-query tokens, the token signing key."""
from __future__ import annotations

import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from . import catalog
from .access import ALL_GRANTS, Consent, check_roles
from .clock import iso
from .errors import ApiError
from .tenant import GDAP_STATES, Tenant
from .users import new_user_data, role_templates

# Delta and paging cursors are kept server-side; the oldest are forgotten, like Microsoft's expire.
MAX_CURSORS = 20_000


@dataclass
class DeviceCode:
    """A pending device-code sign-in (msal's device flow): approved or declined through the control API."""

    user_code: str
    client_id: str
    tenant_id: str
    resource: str
    expires_at: float
    state: str = "pending"  # pending | approved | declined

    def view(self) -> dict[str, Any]:
        return {"user_code": self.user_code, "client_id": self.client_id, "tenant_id": self.tenant_id,
                "resource": self.resource, "state": self.state}


@dataclass
class Partner:
    tenant_id: str
    client_id: str
    client_secret: str
    refresh_token: str

    def view(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "client_id": self.client_id,
                "client_secret": self.client_secret, "refresh_token": self.refresh_token}


class World:
    def __init__(self, signing_key: bytes | None = None) -> None:
        self.signing_key = signing_key or secrets.token_bytes(32)
        self.partners: dict[str, Partner] = {}
        self.tenants: dict[str, Tenant] = {}
        self.cursors: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Refresh tokens issued to partner apps: token -> (client id, revoked).
        self.refresh_tokens: dict[str, tuple[str, bool]] = {}
        self.device_codes: dict[str, DeviceCode] = {}  # by device_code (the secret half)

    def reset(self) -> None:
        # The signing key survives: it is the server's identity, not part of the world.
        self.partners.clear()
        self.tenants.clear()
        self.cursors.clear()
        self.refresh_tokens.clear()
        self.device_codes.clear()

    # -- partners ----------------------------------------------------------------------------------
    def add_partner(self, spec: dict[str, Any]) -> Partner:
        try:
            partner = Partner(str(spec["tenant_id"]), str(spec["client_id"]), str(spec["client_secret"]),
                              str(spec.get("refresh_token") or secrets.token_urlsafe(48)))
        except KeyError as missing:
            raise ApiError(400, "invalid", f"{missing.args[0]} is required") from None
        self.partners[partner.client_id] = partner
        self.refresh_tokens[partner.refresh_token] = (partner.client_id, False)
        return partner

    def issue_refresh_token(self, client_id: str) -> str:
        token = secrets.token_urlsafe(48)
        self.refresh_tokens[token] = (client_id, False)
        return token

    def revoke_refresh_tokens(self, client_id: str) -> int:
        """Every refresh token of the app stops working (a password reset, an admin's revocation)."""
        mine = [t for t, (owner, revoked) in self.refresh_tokens.items() if owner == client_id and not revoked]
        for token in mine:
            self.refresh_tokens[token] = (client_id, True)
        return len(mine)

    # -- device-code sign-ins ----------------------------------------------------------------------
    def start_device_code(self, client_id: str, tenant_id: str, resource: str, *, now: float,
                          lifetime_s: float) -> tuple[str, DeviceCode]:
        # Expired ones go first: the table holds only sign-ins someone may still finish.
        for key in [k for k, d in self.device_codes.items() if d.expires_at <= now]:
            del self.device_codes[key]
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        device_code = secrets.token_urlsafe(32)
        self.device_codes[device_code] = DeviceCode(user_code, client_id, tenant_id, resource, now + lifetime_s)
        return device_code, self.device_codes[device_code]

    def device_code_by_user_code(self, user_code: str) -> DeviceCode | None:
        return next((d for d in self.device_codes.values() if d.user_code == user_code.upper()), None)

    # -- tenants -----------------------------------------------------------------------------------
    def tenant_by_domain(self, name: str) -> Tenant | None:
        key = name.lower()
        return next((t for t in self.tenants.values() if key in t.domains), None)

    def resolve_tenant(self, key: str) -> Tenant | None:
        """A tenant by id or by any of its domain names (msal authorities may use either)."""
        return self.tenants.get(key) or (self.tenant_by_domain(key) if "." in key else None)

    def domain_taken(self, name: str) -> bool:
        return self.tenant_by_domain(name) is not None

    def create_tenant(self, spec: dict[str, Any], *, now: float) -> Tenant:
        tenant_id = str(spec.get("tenant_id") or uuid.uuid4())
        if tenant_id in self.tenants:
            raise ApiError(409, "conflict", f"tenant {tenant_id} exists")
        company = str(spec.get("company_name") or spec.get("initial_domain") or tenant_id)
        initial = str(spec.get("initial_domain") or f"{_slug(company)}.onmicrosoft.com")
        if self.domain_taken(initial):
            raise ApiError(409, "conflict", f"domain {initial} belongs to another tenant")
        tenant = Tenant(tenant_id, company, initial, now)
        self.tenants[tenant_id] = tenant
        try:
            self.update_tenant(tenant, {k: v for k, v in spec.items() if k != "company_name"}, now=now)
        except Exception:
            del self.tenants[tenant_id]
            raise
        return tenant

    def update_tenant(self, tenant: Tenant, spec: dict[str, Any], *, now: float) -> None:
        """Control-API PATCH: domains by name, SKUs by part number, the rest replaced, users added."""
        for domain in spec.get("domains") or []:
            other = self.tenant_by_domain(str(domain["name"]))
            if other is not None and other is not tenant:
                raise ApiError(409, "conflict", f"domain {domain['name']} belongs to another tenant")
            tenant.merge_domain(domain)
        for sku in spec.get("skus") or []:
            tenant.merge_sku(sku)
        if "company_name" in spec:
            tenant.company_name = str(spec["company_name"])
        if "gdap" in spec:
            if spec["gdap"] not in GDAP_STATES:
                raise ApiError(400, "invalid", f"gdap must be one of {GDAP_STATES}")
            tenant.gdap = str(spec["gdap"])
        if "gdap_roles" in spec:
            tenant.gdap_roles = check_roles(spec["gdap_roles"])
        if "consented_apps" in spec:
            self.set_consents(tenant, spec["consented_apps"], now=now)
        if "mca_signed" in spec:
            self.set_mca(tenant, bool(spec["mca_signed"]), now=now)
        for body in spec.get("users") or []:
            self.seed_user(tenant, body, now=now)

    @staticmethod
    def set_mca(tenant: Tenant, signed: bool, *, now: float) -> None:
        if not signed:
            tenant.mca = None
        elif tenant.mca is None:
            # Signed outside Partner Center's API (the seed): a plausible record, like a portal signature.
            tenant.mca = {
                "primaryContact": {"firstName": "Seeded", "lastName": "Contact",
                                   "email": f"admin@{tenant.initial_domain}", "phoneNumber": ""},
                "templateId": catalog.MCA_TEMPLATE_ID, "dateAgreed": iso(now), "type": "MicrosoftCustomerAgreement",
                "agreementLink": catalog.MCA_LINK,
            }

    @staticmethod
    def set_consents(tenant: Tenant, client_ids: list[str], *, now: float) -> None:
        """The seed says which apps are consented now: kept ones take effect at once, others go."""
        if not isinstance(client_ids, list) or not all(isinstance(c, str) and c for c in client_ids):
            raise ApiError(400, "invalid", "consented_apps must be a list of client ids")
        kept = {c: tenant.consents.get(c) for c in client_ids}
        tenant.consents = {c: Consent(old.granted_at if old else now, min(old.effective_at, now) if old else now,
                                      ALL_GRANTS)
                           for c, old in kept.items()}

    @staticmethod
    def seed_user(tenant: Tenant, body: dict[str, Any], *, now: float) -> None:
        if not body.get("userPrincipalName"):
            raise ApiError(400, "invalid", "each user needs a userPrincipalName")
        body = {"displayName": body["userPrincipalName"].split("@")[0],
                "mailNickname": body["userPrincipalName"].split("@")[0], **body}
        try:
            roles = role_templates(body.get("directory_roles") or [])
        except ValueError as exc:
            raise ApiError(400, "invalid", str(exc)) from None
        data = new_user_data({k: v for k, v in body.items() if k not in ("mailbox", "directory_roles")}, iso(now))
        user = tenant.add_user(data, now=now, lag=0, password=None, require_verified=False)
        user.roles = roles
        try:
            tenant.consume_seats(user)
        except ApiError:
            tenant.delete_user(user)
            raise
        tenant.seed_mailbox(user, body.get("mailbox"))

    # -- cursors (delta and paging state) ----------------------------------------------------------
    def store_cursor(self, state: dict[str, Any]) -> str:
        token = secrets.token_urlsafe(24)
        self.cursors[token] = state
        while len(self.cursors) > MAX_CURSORS:
            self.cursors.popitem(last=False)
        return token


def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())[:27] or "tenant"
