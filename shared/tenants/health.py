"""A customer's access, checked live: does the reseller's app get tokens there, does GDAP grant the work?

Each check says what works or what does not, and the fix in one sentence. A check that cannot be answered
(Microsoft busy) says so; nothing here retries beyond the live calls' short budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from shared.auth.principal import Principal
from shared.customers import context, live
from shared.db.models import ServiceProvider, TenantConnection
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.microsoft.errors import ConsentMissing, CredentialsRejected, MicrosoftError, Throttled, Transient
from shared.reading import reading
from shared.tenants import consent, denials, gdap, roles
from shared.tenants.roles import Need

Status = Literal["ok", "warning", "failed"]
BUSY_FIX = "Microsoft did not answer in time: ask again in a minute."


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class RoleView:
    name: str
    template_id: str
    work: str | None = None


@dataclass
class TenantAccess:
    customer_id: str
    tenant_id: str
    checked_at: datetime
    checks: list[Check] = field(default_factory=list)
    gdap_status: str | None = None
    roles: list[RoleView] = field(default_factory=list)
    missing: list[RoleView] = field(default_factory=list)
    ends_at: datetime | None = None
    consented_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)


def customer_access(uow: UnitOfWork, who: Principal, customer_id: str) -> TenantAccess:
    with reading(uow) as s:
        ctx = context.load(s, who, customer_id)
        conn = s.scalar(select(TenantConnection).where(TenantConnection.customer_id == customer_id))
        if conn is None or not conn.tenant_id:
            raise StateConflict("tenant_not_connected", "the customer has no tenant yet: connect one "
                                                        "(PUT /v1/customers/{id}/services/azure-ad)")
        provider = s.get(ServiceProvider, ctx.service_provider_id)
        assert provider is not None
    # Outside the transaction: no connection is held while Microsoft answers.
    return check_tenant(provider, customer_id, conn)


def check_tenant(provider: ServiceProvider, customer_id: str, conn: TenantConnection) -> TenantAccess:
    report = TenantAccess(customer_id, conn.tenant_id, utcnow(), consented_at=conn.consented_at)
    state = f"{conn.state} ({conn.initial_domain or 'domain not read yet'})"
    report.checks.append(Check("tenant", "ok" if conn.state == "connected" else "warning", state,
                               None if conn.state == "connected" else
                               "Follow the customer's Azure AD request (GET /v1/requests/{id}) until it succeeds."))
    report.checks.append(_consent_check(provider, conn.tenant_id))
    report.checks.extend(_gdap_checks(provider, conn.tenant_id, report))
    return report


def _consent_check(provider: ServiceProvider, tenant_id: str) -> Check:
    # Asked afresh: a token issued before the consent was removed would still answer for an hour.
    live.clients().tokens.forget(live.credential(provider), tenant_id)
    try:
        works = consent.issued(live.graph(provider, tenant_id))
    except CredentialsRejected as exc:
        return Check("consent", "failed", f"the reseller's own sign-in is refused ({exc.code})",
                     denials.FIXES[denials.PARTNER_CREDENTIALS_INVALID])
    except MicrosoftError as exc:
        return _unanswered("consent", exc)
    if works:
        return Check("consent", "ok", "Microsoft issues the reseller's app tokens for the tenant")
    return Check("consent", "failed", "Microsoft issues the reseller's app no token for the tenant (AADSTS700016: "
                 "no consent, or one not in effect yet)", denials.FIXES[denials.CONSENT_MISSING])


def _gdap_checks(provider: ServiceProvider, tenant_id: str, report: TenantAccess) -> list[Check]:
    try:
        found = gdap.read(live.graph(provider, provider.pc_tenant_id), tenant_id)
    except (ConsentMissing, CredentialsRejected) as exc:
        return [Check("gdap", "failed", f"the reseller's sign-in to its own tenant is refused ({exc.code})",
                      denials.FIXES[denials.PARTNER_CREDENTIALS_INVALID])]
    except MicrosoftError as exc:
        if exc.status == 403:
            return [Check("gdap", "failed", "the partner app may not read GDAP relationships in the partner tenant",
                          denials.FIXES[denials.PARTNER_PERMISSION_MISSING])]
        return [_unanswered("gdap", exc)]
    report.gdap_status, report.ends_at = found.status, found.ends
    report.roles = [_role_view(t) for t in found.roles]
    if not found.active:
        statuses = ", ".join(sorted({r.status for r in found.relationships})) or "none"
        return [Check("gdap", "failed", f"no active GDAP relationship ({statuses})",
                      denials.FIXES[denials.GDAP_MISSING])]
    checks = [Check("gdap", "ok", f"active; roles: {', '.join(roles.names(found.roles)) or 'none'}")]
    needed: list[tuple[Need, Status]] = [(roles.USERS, "failed"), (roles.LICENCES, "failed"),
                                         (roles.ALIASES, "warning")]
    for need, severity in needed:
        if need.met_by(found.roles):
            checks.append(Check(f"role_{need.work}", "ok", f"{need.role.name} (or a role covering it) granted"))
        else:
            report.missing.append(RoleView(need.role.name, need.role.template_id, need.work))
            checks.append(Check(f"role_{need.work}", severity, f"{need} is not granted",
                                denials.FIXES[denials.GDAP_ROLES_MISSING]))
    expiring = found.expiring(utcnow())
    if expiring:
        checks.append(Check("gdap_expiry", "warning", gdap.expiry_note(expiring, utcnow()),
                            "Extend the relationship (or have the customer approve a new one) in Partner Center "
                            "before it ends."))
    else:
        ends = f"until {found.ends:%Y-%m-%d}" if found.ends else "with no end date given"
        checks.append(Check("gdap_expiry", "ok", f"access lasts {ends}"))
    return checks


def _role_view(template_id: str) -> RoleView:
    known = roles.KNOWN.get(template_id)
    return RoleView(known.name if known else template_id, template_id)


def _unanswered(name: str, exc: MicrosoftError) -> Check:
    if isinstance(exc, Throttled | Transient):
        return Check(name, "warning", f"not checked: {exc.message}", BUSY_FIX)
    return Check(name, "failed", exc.message, "Check the tenant id and the reseller's own access "
                                              "(GET /v1/service-providers/{id}/health).")
