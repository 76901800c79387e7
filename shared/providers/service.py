"""Creating resellers and provisioning their services in the guide's order: Azure AD, then Microsoft Online."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit, guards
from shared.auth import scope
from shared.auth.principal import OPERATOR, SERVICE_PROVIDER, Principal
from shared.db.models import (
    CustomerPlan,
    ProviderCustomerPlan,
    ProviderService,
    ProviderUserPlan,
    ProvisioningRequest,
    ServiceProvider,
    UserPlan,
)
from shared.db.uow import UnitOfWork
from shared.errors import InvalidInput, StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.reading import reading
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import create_request, ref, retry_request
from shared.security import encrypt
from shared.tenants.denials import PARTNER_CREDENTIALS_INVALID

AZURE_AD, MICROSOFT_ONLINE = "azure_ad", "microsoft_online"
SERVICES = (AZURE_AD, MICROSOFT_ONLINE)
PROVISIONED = "provisioned"


@dataclass(frozen=True)
class PartnerCenterInput:
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServiceState:
    """One reseller service as `GET .../services` shows it."""

    service: str
    state: str
    request_id: str | None
    plans: list[str]


def create_provider(uow: UnitOfWork, who: Principal, *, name: str, kind: str, partner_center: PartnerCenterInput,
                    idem: Idempotency | None, present: Callable[[ServiceProvider], Any]) -> Answer:
    scope.require_operator(who, "create service providers")

    def work(uow: UnitOfWork) -> ServiceProvider:
        pc = partner_center
        row = ServiceProvider(name=name, kind=kind, pc_tenant_id=pc.tenant_id, pc_client_id=pc.client_id,
                              pc_client_secret_enc=encrypt(pc.client_secret),
                              pc_refresh_token_enc=encrypt(pc.refresh_token) if pc.refresh_token else None)
        uow.session.add(row)
        uow.session.flush()
        audit.record(uow.session, who.actor, "service_provider.created", "service_provider", row.id,
                     {"name": name, "kind": kind, "pc_tenant_id": pc.tenant_id})
        return row

    return answer_once(uow, idem, 201, work, present)


@dataclass(frozen=True)
class CredentialsInput:
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Rotated:
    provider: ServiceProvider
    resumed: list[str]


def rotate_credentials(uow: UnitOfWork, who: Principal, provider_id: str, new: CredentialsInput, *,
                       idem: Idempotency | None, present: Callable[[Rotated], Any]) -> Answer:
    """Store a new client secret and/or refresh token (encrypted); requests blocked on the old ones resume."""

    def work(uow: UnitOfWork) -> Rotated:
        row = scope.provider(uow.session, who, provider_id)  # operator, or the reseller's own key: 404 for others
        return store_credentials(uow, row, new, actor=who.actor)

    return answer_once(uow, idem, 200, work, present)


def store_credentials(uow: UnitOfWork, row: ServiceProvider, new: CredentialsInput, *, actor: str) -> Rotated:
    """Encrypt and keep the new credential; requests blocked on the old one run again once committed."""
    s = uow.session
    if new.client_secret is not None:
        row.pc_client_secret_enc = encrypt(new.client_secret)
    if new.refresh_token is not None:
        row.pc_refresh_token_enc = encrypt(new.refresh_token)
    audit.record(s, actor, "service_provider.credentials.rotated", "service_provider", row.id,
                 {"client_secret": new.client_secret is not None, "refresh_token": new.refresh_token is not None})
    blocked = s.scalars(select(ProvisioningRequest).where(
        ProvisioningRequest.service_provider_id == row.id, ProvisioningRequest.state == kinds.BLOCKED,
        ProvisioningRequest.blocked_reason == PARTNER_CREDENTIALS_INVALID).with_for_update()).all()
    publish_after_commit(uow, [retry_request(s, req) for req in blocked])
    return Rotated(row, [req.id for req in blocked])


def list_providers(uow: UnitOfWork, who: Principal) -> list[ServiceProvider]:
    with reading(uow) as s:
        stmt = select(ServiceProvider).order_by(ServiceProvider.name, ServiceProvider.id)
        if who.role == SERVICE_PROVIDER:
            stmt = stmt.where(ServiceProvider.id == who.scope_id)
        elif who.role != OPERATOR:
            return []
        return list(s.scalars(stmt))


def get_provider(uow: UnitOfWork, who: Principal, provider_id: str) -> ServiceProvider:
    with reading(uow) as s:
        return scope.provider(s, who, provider_id)


def services(uow: UnitOfWork, who: Principal, provider_id: str) -> list[ServiceState]:
    with reading(uow) as s:
        scope.provider(s, who, provider_id)
        rows = {r.service: r for r in s.scalars(select(ProviderService).where(
            ProviderService.service_provider_id == provider_id))}
        plans = {
            AZURE_AD: list(s.scalars(select(ProviderCustomerPlan.customer_plan_id).where(
                ProviderCustomerPlan.service_provider_id == provider_id))),
            MICROSOFT_ONLINE: list(s.scalars(select(ProviderUserPlan.user_plan_id).where(
                ProviderUserPlan.service_provider_id == provider_id))),
        }
        return [ServiceState(svc, rows[svc].state if svc in rows else "not_provisioned",
                             rows[svc].request_id if svc in rows else None, sorted(plans[svc]))
                for svc in SERVICES]


def provision_azure_ad(uow: UnitOfWork, who: Principal, provider_id: str, customer_plan_ids: Sequence[str], *,
                       idem: Idempotency | None,
                       present: Callable[[ProvisioningRequest], Any]) -> Answer:
    """Start `provider.azure_ad` with these customer plans (the pipeline checks Partner Center for real and
    links the plans once it has); until then the service keeps its last good plans."""

    def work(uow: UnitOfWork) -> ProvisioningRequest:
        s = uow.session
        _authorise(s, who, provider_id)
        ids = _plans(s, CustomerPlan, customer_plan_ids, "customer_plans")
        return _start(uow, who, provider_id, AZURE_AD, kinds.PROVIDER_AZURE_AD, {"customer_plans": ids})

    return answer_once(uow, idem, 202, work, present)


def provision_microsoft_online(uow: UnitOfWork, who: Principal, provider_id: str, user_plan_ids: Sequence[str], *,
                               idem: Idempotency | None,
                               present: Callable[[ProvisioningRequest], Any]) -> Answer:
    """Start `provider.microsoft_online` with these user plans; Azure AD must be provisioned first."""

    def work(uow: UnitOfWork) -> ProvisioningRequest:
        s = uow.session
        _authorise(s, who, provider_id)
        if provider_service_state(s, provider_id, AZURE_AD) != PROVISIONED:
            raise StateConflict("service_dependency",
                                "Microsoft Online needs the reseller's Azure AD service provisioned first")
        ids = _plans(s, UserPlan, user_plan_ids, "user_plans")
        return _start(uow, who, provider_id, MICROSOFT_ONLINE, kinds.PROVIDER_MICROSOFT_ONLINE, {"user_plans": ids})

    return answer_once(uow, idem, 202, work, present)


def provider_service_state(session: Session, provider_id: str, service: str) -> str | None:
    return session.scalar(select(ProviderService.state).where(
        ProviderService.service_provider_id == provider_id, ProviderService.service == service))


def _plans(session: Session, model: type[CustomerPlan] | type[UserPlan], ids: Sequence[str], field: str) -> list[str]:
    """Known plan ids, in order, once each; a service without plans offers nothing (the guide: "at least one")."""
    if not ids:
        raise InvalidInput(f"{field} needs at least one plan",
                           [{"loc": ["body", field], "msg": "at least one plan", "type": "too_short"}])
    return guards.known_ids(session, model, ids, field)


def _authorise(session: Session, who: Principal, provider_id: str) -> None:
    scope.provider(session, who, provider_id)  # 404 first: a foreign provider's existence is not revealed
    scope.require_operator(who, "provision a reseller's services")


def _start(uow: UnitOfWork, who: Principal, provider_id: str, service: str, kind: str,
           params: dict[str, Any]) -> ProvisioningRequest:
    """The request, published after commit. A provisioned service stays provisioned (with its last good
    plans) while the new request runs: customers are never refused because the reseller re-applied it;
    a failure is the request's, not the service's (shared.pipeline.finish keeps provisioned ones)."""
    s = uow.session
    row = s.scalar(select(ProviderService).where(ProviderService.service_provider_id == provider_id,
                                                 ProviderService.service == service).with_for_update())
    if row is None:
        row = ProviderService(service_provider_id=provider_id, service=service)
        s.add(row)
    else:
        guards.no_active_request(s, row.request_id, f"the reseller's {service} service")
    req = create_request(s, kind=kind, service_provider_id=provider_id, params=params, created_by=who.key_id)
    if row.state != PROVISIONED:
        row.state = "provisioning"
    row.request_id = req.id
    audit.record(s, who.actor, f"service_provider.{service}.requested", "service_provider", provider_id,
                 {"request_id": req.id, **params})
    publish_after_commit(uow, [ref(req)])
    return req
