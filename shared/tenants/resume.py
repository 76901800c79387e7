"""Beat: requests blocked on access resume by themselves once Microsoft grants it, a bounded batch a pass.

A request blocked for consent, GDAP roles or the reseller's credential (shared.tenants.denials) is looked at
no more often than every `access_recheck_s`: one live check per reseller, tenant and need (can the app get a
token there? does an active relationship grant the roles the blocked step needs? does the reseller's own
sign-in work?). Only when it passes does the request go back to `queued`, from the step that blocked, so a
cause nobody fixed costs one cheap call per recheck, never a retry of the step.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import nulls_first, or_, select
from sqlalchemy.orm import Session, lazyload, sessionmaker

from shared.db.models import ProvisioningRequest, TenantConnection
from shared.db.uow import UnitOfWork
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import MicrosoftError
from shared.pipeline.ports import Microsoft
from shared.providers.credentials import partner_credential
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import retry_request
from shared.settings import Settings
from shared.tenants import consent, denials, gdap
from shared.tenants.roles import Need

log = logging.getLogger(__name__)
PR = ProvisioningRequest
_CONSENT = frozenset({denials.CONSENT_PENDING, denials.CONSENT_MISSING})
_GDAP = frozenset({denials.GDAP_MISSING, denials.GDAP_ROLES_MISSING})


@dataclass(frozen=True)
class _Check:
    """One live question for Microsoft; blocked requests that ask the same share its answer."""

    kind: str  # consent | gdap | partner
    provider_id: str
    tenant_id: str
    needs: tuple[Need, ...] = ()


def resume_blocked_access(microsoft: Microsoft, *, settings: Settings, now: datetime,
                          factory: sessionmaker[Session] | None = None) -> list[str]:
    """One pass: the ids of the requests put back in the queue (published once committed)."""
    checks, credentials = _due(factory, settings, now)
    if not checks:
        return []
    passed = {check for check in set(checks.values()) if _passes(microsoft, check, credentials[check.provider_id])}
    resumed = []
    with UnitOfWork(factory) as uow:
        for (request_id, reason), check in checks.items():
            if check not in passed:
                continue
            req = uow.session.get(PR, request_id, with_for_update=True)
            if req is not None and req.state == kinds.BLOCKED and req.blocked_reason == reason:
                publish_after_commit(uow, [retry_request(uow.session, req)])
                resumed.append(request_id)
        uow.commit()
    if resumed:
        log.info("resumed %d request(s) blocked on access that Microsoft now grants", len(resumed))
    return resumed


def _due(factory: sessionmaker[Session] | None, settings: Settings,
         now: datetime) -> tuple[dict[tuple[str, str], _Check], dict[str, PartnerCredential]]:
    """Take the due requests (their next look pushed `access_recheck_s` away, committed before any call)."""
    checks: dict[tuple[str, str], _Check] = {}
    credentials: dict[str, PartnerCredential] = {}
    with UnitOfWork(factory) as uow:
        s = uow.session
        rows = s.scalars(
            select(PR).where(PR.state == kinds.BLOCKED, PR.blocked_reason.in_(sorted(denials.RESUMABLE)),
                             or_(PR.next_attempt_at.is_(None), PR.next_attempt_at <= now))
            .order_by(nulls_first(PR.next_attempt_at)).limit(settings.access_resume_batch)
            .with_for_update(skip_locked=True, of=PR).options(lazyload(PR.steps))).all()
        for req in rows:
            req.next_attempt_at = now + timedelta(seconds=settings.access_recheck_s)
            check = _check_for(s, req)
            if check is None:
                continue
            if check.provider_id not in credentials:
                credentials[check.provider_id] = partner_credential(s, check.provider_id)
            checks[(req.id, str(req.blocked_reason))] = check
        uow.commit()
    return checks, credentials


def _check_for(s: Session, req: ProvisioningRequest) -> _Check | None:
    provider = req.service_provider_id
    if provider is None:
        return None
    reason = str(req.blocked_reason)
    if reason in (denials.PARTNER_CREDENTIALS_INVALID, denials.PARTNER_PERMISSION_MISSING):
        return _Check("partner", provider, _tenant_of(s, req) or "")
    tenant = _tenant_of(s, req)
    if not tenant:
        return None
    if reason in _CONSENT:
        return _Check("consent", provider, tenant)
    return _Check("gdap", provider, tenant, tuple(gdap.needs_of(s, req, req.current_step or "")))


def _tenant_of(s: Session, req: ProvisioningRequest) -> str | None:
    found = s.scalar(select(TenantConnection.tenant_id).where(TenantConnection.customer_id == req.customer_id)) \
        if req.customer_id else None
    return found or (req.context or {}).get("created_tenant_id") or (req.params or {}).get("tenant_id")


def _passes(microsoft: Microsoft, check: _Check, cred: PartnerCredential) -> bool:
    probe: Callable[[], Any] = {"consent": lambda: consent.issued(microsoft.graph(cred, check.tenant_id)),
                                "gdap": lambda: _roles_granted(microsoft, cred, check),
                                "partner": lambda: _partner_works(microsoft, cred, check.tenant_id)}[check.kind]
    try:
        return bool(probe())
    except MicrosoftError as exc:  # still refused, or Microsoft busy: the next recheck asks again
        log.info("access for %s in tenant %s still refused: %s", cred.app, check.tenant_id, type(exc).__name__)
        return False


def _roles_granted(microsoft: Microsoft, cred: PartnerCredential, check: _Check) -> bool:
    found = gdap.read(microsoft.graph(cred, cred.tenant_id), check.tenant_id)
    return found.allows(check.needs)


def _partner_works(microsoft: Microsoft, cred: PartnerCredential, tenant_id: str) -> bool:
    """The reseller's own sign-in (Partner Center) and its Graph access in the partner tenant both work."""
    microsoft.partner_center(cred).check_connection()
    microsoft.graph(cred, cred.tenant_id).gdap_relationships(tenant_id or cred.tenant_id)
    return True
