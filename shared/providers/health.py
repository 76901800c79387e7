"""A reseller's Microsoft access, checked live: its sign-in, Partner Center, GDAP reads, and its tenants.

The reseller-wide checks come first; then, for up to MAX_TENANTS connected customers (by name), what
shared.tenants.health checks for one customer. More than that: GET /v1/customers/{id}/access one by one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from shared.auth import scope
from shared.auth.principal import Principal
from shared.customers import live
from shared.db.models import Customer, ServiceProvider, TenantConnection
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.microsoft.errors import AuthFailed, MicrosoftError, Throttled, Transient
from shared.reading import reading
from shared.tenants import denials
from shared.tenants.health import BUSY_FIX, Check, TenantAccess, check_tenant

# Each connected tenant costs two live calls; an answer stays within a few seconds.
MAX_TENANTS = 20
CONSENT_COMMAND = "Run `provisioner partner consent --provider {id}` (or POST /v1/service-providers/{id}/credentials " \
                  "with a refresh_token) to store an App+User refresh token."


@dataclass
class ProviderHealth:
    service_provider_id: str
    name: str
    checked_at: datetime
    checks: list[Check] = field(default_factory=list)
    tenants: list[TenantAccess] = field(default_factory=list)
    tenants_total: int = 0

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks) and all(t.ok for t in self.tenants)


def provider_health(uow: UnitOfWork, who: Principal, provider_id: str) -> ProviderHealth:
    with reading(uow) as s:
        provider = scope.provider(s, who, provider_id)
        rows = s.execute(select(Customer.id, TenantConnection).join(
            TenantConnection, TenantConnection.customer_id == Customer.id).where(
            Customer.service_provider_id == provider_id, TenantConnection.tenant_id != "")
            .order_by(Customer.name, Customer.id)).all()
    # Outside the transaction: no connection is held while Microsoft answers.
    report = ProviderHealth(provider.id, provider.name, utcnow(), tenants_total=len(rows))
    report.checks = reseller_checks(provider)
    report.tenants = [check_tenant(provider, customer_id, conn) for customer_id, conn in rows[:MAX_TENANTS]]
    return report


def reseller_checks(provider: ServiceProvider) -> list[Check]:
    """The reseller's own access: its app's sign-in, Partner Center, the refresh token, Graph in its tenant."""
    return [_sign_in(provider), _partner_center(provider), _refresh_token(provider), _gdap_reads(provider)]


def _sign_in(provider: ServiceProvider) -> Check:
    """Client credentials in the partner tenant: the app id and secret are right."""
    clients, credential = live.clients(), live.credential(provider)
    clients.tokens.forget(credential, provider.pc_tenant_id)  # asked afresh, not answered from a cache
    try:
        clients.tokens.token(credential, provider.pc_tenant_id, clients.settings.ms_graph_scope)
    except MicrosoftError as exc:
        return _failed("sign_in", exc)
    return Check("sign_in", "ok", f"app {provider.pc_client_id} signs in to partner tenant {provider.pc_tenant_id}")


def _partner_center(provider: ServiceProvider) -> Check:
    kind = "App+User (stored refresh token)" if provider.pc_refresh_token_enc else "app-only"
    try:
        live.partner_center(provider).check_connection()
    except MicrosoftError as exc:
        return _failed("partner_center", exc)
    return Check("partner_center", "ok", f"Partner Center answers the app ({kind})")


def _refresh_token(provider: ServiceProvider) -> Check:
    if provider.pc_refresh_token_enc:
        return Check("refresh_token", "ok", "an App+User refresh token is stored (secure application model)")
    return Check("refresh_token", "warning", "no App+User refresh token: Partner Center calls that need a "
                 "user (as Microsoft's do for agreements) may be refused", CONSENT_COMMAND.format(id=provider.id))


def _gdap_reads(provider: ServiceProvider) -> Check:
    """Graph in the partner tenant: the app may read the GDAP relationships (DelegatedAdminRelationship)."""
    try:
        live.graph(provider, provider.pc_tenant_id).gdap_relationships(provider.pc_tenant_id)
    except MicrosoftError as exc:
        if exc.status == 403:
            return Check("gdap_read", "failed", "the app may not read GDAP relationships in the partner tenant",
                         denials.FIXES[denials.PARTNER_PERMISSION_MISSING])
        return _failed("gdap_read", exc)
    return Check("gdap_read", "ok", "Graph answers the app in the partner tenant (GDAP relationships readable)")


def _failed(name: str, exc: MicrosoftError) -> Check:
    if isinstance(exc, Throttled | Transient):
        return Check(name, "warning", f"not checked: {exc.message}", BUSY_FIX)
    if isinstance(exc, AuthFailed):  # in the partner's own tenant: its app id, secret or refresh token
        return Check(name, "failed", exc.message, denials.FIXES[denials.PARTNER_CREDENTIALS_INVALID])
    return Check(name, "failed", exc.message, "Check the partner app's registration and its Partner Center API "
                                              "access (Partner Center, Account settings, App management).")
