"""Requests blocked on `purchase_limit` resume once the policy would let them buy: at once when the policy is
changed (the API calls resume_customer), else by the beat pass (a new day under a daily cap)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import Customer, ProvisioningRequest
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.purchases import ledger, policy
from shared.purchases.buying import PURCHASE_LIMIT
from shared.requests import kinds
from shared.requests.dispatch import RequestRef, publish_after_commit
from shared.requests.service import resume_blocked


def allows_buying(s: Session, customer_id: str, service_provider_id: str, now: datetime) -> bool:
    rules = policy.effective(s, customer_id, service_provider_id)
    units, _ = policy.allowance(rules, ledger.bought_since(s, customer_id, ledger.start_of_day(now)), 1)
    return units > 0


def resume_customer(s: Session, customer_id: str, service_provider_id: str, now: datetime) -> list[RequestRef]:
    """The customer's purchase_limit blocks, back to queued when the policy now allows a purchase (publish the
    refs after commit)."""
    if not allows_buying(s, customer_id, service_provider_id, now):
        return []
    return resume_blocked(s, customer_id=customer_id, reason=PURCHASE_LIMIT)


def resume_provider(s: Session, service_provider_id: str, now: datetime) -> list[RequestRef]:
    """After the reseller's default changed: its customers' purchase_limit blocks that may buy now."""
    refs: list[RequestRef] = []
    for customer_id in _blocked_customers(s, service_provider_id):
        refs += resume_customer(s, customer_id, service_provider_id, now)
    return refs


def resume_limits(now: datetime | None = None, *,
                  session_factory: sessionmaker[Session] | None = None) -> list[RequestRef]:
    """The beat pass: every customer with a purchase_limit block; nothing to do costs one indexed query."""
    now = now or utcnow()
    refs: list[RequestRef] = []
    with UnitOfWork(session_factory) as uow:
        for customer_id, provider_id in _blocked(uow.session):
            refs += resume_customer(uow.session, customer_id, provider_id, now)
        publish_after_commit(uow, refs)
        uow.commit()
    return refs


def _blocked(s: Session) -> list[tuple[str, str]]:
    blocked = (select(ProvisioningRequest.customer_id)
               .where(ProvisioningRequest.state == kinds.BLOCKED, ProvisioningRequest.blocked_reason == PURCHASE_LIMIT)
               .distinct().subquery())
    rows = s.execute(select(Customer.id, Customer.service_provider_id)
                     .join(blocked, blocked.c.customer_id == Customer.id))
    return [(r[0], r[1]) for r in rows]


def _blocked_customers(s: Session, service_provider_id: str) -> list[str]:
    return [c for c, p in _blocked(s) if p == service_provider_id]
