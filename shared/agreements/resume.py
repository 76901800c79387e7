"""Requests blocked on the MCA resume by themselves once Partner Center says it is signed (a beat pass).

Each pass looks only at customers with a request blocked on `mca_not_signed` (one indexed query, so
nothing happens when nothing is blocked), at most `limit` of them, and asks Partner Center about a
customer at most once a minute (the Agreement row's `checked_at`); the longest unchecked go first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from shared.agreements import mca
from shared.agreements.freshness import FRESH_FOR
from shared.db.models import Agreement, Customer, ProvisioningRequest, ServiceProvider, TenantConnection
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.errors import ServiceError
from shared.reading import reading
from shared.requests import kinds
from shared.requests.dispatch import RequestRef, publish_after_commit
from shared.requests.service import resume_blocked

log = logging.getLogger(__name__)
DEFAULT_LIMIT = 20  # Partner Center calls per pass, at most


@dataclass(frozen=True)
class _Candidate:
    customer_id: str
    tenant_id: str
    stored_signed: bool
    provider: ServiceProvider


def resume_signed(now: datetime | None = None, *, limit: int = DEFAULT_LIMIT,
                  session_factory: sessionmaker[Session] | None = None) -> list[RequestRef]:
    """Re-read the MCA of customers with requests blocked on it; resume (and publish) those now signed."""
    now = now or utcnow()
    with reading(UnitOfWork(session_factory)) as s:
        candidates = _candidates(s, now, limit)
    refs: list[RequestRef] = []
    for c in candidates:
        view = None
        if not c.stored_signed:  # signed since (read by an accept): nothing to ask
            try:  # outside any transaction: no row is held while Partner Center answers
                view = mca.read_live(c.provider, c.tenant_id)
            except ServiceError as exc:
                log.warning("could not read the MCA of customer %s: %s", c.customer_id, exc.code)
                continue
        with UnitOfWork(session_factory) as uow:
            if view is not None:
                mca.remember(uow.session, c.customer_id, view, now)
            resumed = resume_blocked(uow.session, customer_id=c.customer_id, reason=mca.MCA_NOT_SIGNED) \
                if view is None or view.signed else []
            publish_after_commit(uow, resumed)
            uow.commit()
        refs.extend(resumed)
    return refs


def _candidates(s: Session, now: datetime, limit: int) -> list[_Candidate]:
    blocked = (select(ProvisioningRequest.customer_id)
               .where(ProvisioningRequest.state == kinds.BLOCKED,
                      ProvisioningRequest.blocked_reason == mca.MCA_NOT_SIGNED)
               .distinct().subquery())
    rows = s.execute(
        select(Customer.id, Customer.service_provider_id, TenantConnection.tenant_id, Agreement.signed)
        .join(blocked, blocked.c.customer_id == Customer.id)
        .join(TenantConnection, TenantConnection.customer_id == Customer.id)
        .outerjoin(Agreement, Agreement.customer_id == Customer.id)
        .where(TenantConnection.tenant_id != "",
               or_(Agreement.signed.is_(True), Agreement.checked_at.is_(None),
                   Agreement.checked_at <= now - FRESH_FOR))
        .order_by(Agreement.checked_at.asc().nulls_first(), Customer.id)
        .limit(limit)).all()
    providers = {p.id: p for p in s.scalars(select(ServiceProvider).where(
        ServiceProvider.id.in_({r[1] for r in rows})))} if rows else {}
    return [_Candidate(r[0], r[2], bool(r[3]), providers[r[1]]) for r in rows]
