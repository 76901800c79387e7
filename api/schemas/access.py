"""Live access checks: a reseller's health and a customer's access, each check with its fix."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class CheckPublic(BaseModel):
    name: str = Field(description="sign_in, partner_center, refresh_token, gdap_read; tenant, consent, gdap, "
                                  "role_users, role_licences, role_aliases, gdap_expiry")
    status: Literal["ok", "warning", "failed"]
    detail: str = Field(description="What works, or what does not")
    fix: str | None = Field(description="What to do about it, in one sentence (null when ok)")


class RolePublic(BaseModel):
    name: str
    template_id: str = Field(description="The Entra role template id")
    work: str | None = Field(default=None, description="users, licences or aliases: what needs the role")


class GdapPublic(BaseModel):
    status: str | None = Field(description="active, or the relationships' state (none, expired, ...)")
    roles: list[RolePublic] = Field(description="Roles the active relationships grant")
    missing: list[RolePublic] = Field(description="Roles the engine's work needs and the relationship lacks")
    ends_at: datetime | None = Field(description="When the last active relationship ends")


class TenantAccessPublic(BaseModel):
    customer_id: str
    tenant_id: str
    ok: bool = Field(description="No check failed (warnings allowed)")
    checked_at: datetime
    consented_at: datetime | None = Field(description="When the engine granted (or found) the app's consent")
    checks: list[CheckPublic]
    gdap: GdapPublic


class ProviderHealthPublic(BaseModel):
    service_provider_id: str
    name: str
    ok: bool = Field(description="No check failed, the reseller's nor its tenants' shown")
    checked_at: datetime
    checks: list[CheckPublic]
    tenants: list[TenantAccessPublic] = Field(description="Connected customers, by name, up to 20 (see "
                                                          "GET /v1/customers/{id}/access for the others)")
    tenants_total: int


def _checks(checks: Any) -> list[CheckPublic]:
    return [CheckPublic(name=c.name, status=c.status, detail=c.detail, fix=c.fix) for c in checks]


def _roles(views: Any) -> list[RolePublic]:
    return [RolePublic(name=r.name, template_id=r.template_id, work=r.work) for r in views]


def tenant_access(report: Any) -> TenantAccessPublic:
    return TenantAccessPublic(
        customer_id=report.customer_id, tenant_id=report.tenant_id, ok=report.ok, checked_at=report.checked_at,
        consented_at=report.consented_at, checks=_checks(report.checks),
        gdap=GdapPublic(status=report.gdap_status, roles=_roles(report.roles), missing=_roles(report.missing),
                        ends_at=report.ends_at))


def present_access(report: Any) -> dict[str, Any]:
    return tenant_access(report).model_dump(mode="json")


def present_health(report: Any) -> dict[str, Any]:
    return ProviderHealthPublic(
        service_provider_id=report.service_provider_id, name=report.name, ok=report.ok,
        checked_at=report.checked_at, checks=_checks(report.checks),
        tenants=[tenant_access(t) for t in report.tenants], tenants_total=report.tenants_total,
    ).model_dump(mode="json")
