"""Who is emailed about which request events: the customer's own recipients, else its reseller's default.

    event        sent when                                       the temporary password
    provisioned  a provisioning request succeeded (user, customer  only to the customer's own recipients,
                 or reseller service)                              only when the engine set it
    failed       a request failed
    blocked      a request waits for a person (MCA, GDAP, seats)

A customer without recipients of its own gets its reseller's default (`/v1/service-providers/{sp}/
notifications`), never the password: those are the reseller's people. NOTIFY_EMAIL_TO, the operator's
address, gets every event of every customer, never the password.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from shared import audit
from shared.auth import scope
from shared.auth.principal import Principal
from shared.db.models import NotificationRecipients
from shared.db.uow import UnitOfWork
from shared.errors import InvalidInput
from shared.reading import reading

PROVISIONED, FAILED, BLOCKED = "provisioned", "failed", "blocked"
PURCHASED = "purchased"  # seats bought for a direct reseller's customer (shared.purchases)
EVENTS = (PROVISIONED, FAILED, BLOCKED, PURCHASED)
Source = Literal["customer", "service_provider", "none"]


@dataclass(frozen=True)
class RecipientsView:
    """What `GET .../notifications` shows: the addresses and events in force, and whose setting they are."""

    emails: list[str]
    events: list[str]
    source: Source


@dataclass(frozen=True)
class Audience:
    """One email's recipients for an event; `password` is True only for the customer's own recipients."""

    emails: tuple[str, ...]
    password: bool


def customer_recipients(uow: UnitOfWork, who: Principal, customer_id: str) -> RecipientsView:
    with reading(uow) as s:
        customer = scope.customer(s, who, customer_id)
        own = _row(s, customer_id=customer.id)
        if own is not None:
            return RecipientsView(list(own.emails), list(own.events), "customer")
        default = _row(s, service_provider_id=customer.service_provider_id)
        if default is not None:
            return RecipientsView(list(default.emails), list(default.events), "service_provider")
        return RecipientsView([], [], "none")


def set_customer_recipients(uow: UnitOfWork, who: Principal, customer_id: str, emails: Sequence[str],
                            events: Sequence[str]) -> RecipientsView:
    """Replace the customer's own recipients (an empty list is a choice: nobody, not the reseller's default)."""
    with uow:
        s = uow.session
        customer = scope.customer(s, who, customer_id)
        scope.require_manager(who, "change a customer's notification recipients")
        view = _put(s, emails, events, customer_id=customer.id)
        audit.record(s, who.actor, "customer.notifications.updated", "customer", customer.id,
                     {"emails": view.emails, "events": view.events})
        uow.commit()
        return RecipientsView(view.emails, view.events, "customer")


def clear_customer_recipients(uow: UnitOfWork, who: Principal, customer_id: str) -> RecipientsView:
    """Back to the reseller's default."""
    with uow:
        s = uow.session
        customer = scope.customer(s, who, customer_id)
        scope.require_manager(who, "change a customer's notification recipients")
        s.execute(delete(NotificationRecipients).where(NotificationRecipients.customer_id == customer.id))
        audit.record(s, who.actor, "customer.notifications.cleared", "customer", customer.id, None)
        uow.commit()
    return customer_recipients(uow, who, customer_id)


def provider_recipients(uow: UnitOfWork, who: Principal, provider_id: str) -> RecipientsView:
    with reading(uow) as s:
        provider = scope.provider(s, who, provider_id)
        row = _row(s, service_provider_id=provider.id)
        return RecipientsView(list(row.emails), list(row.events), "service_provider") if row else \
            RecipientsView([], [], "none")


def set_provider_recipients(uow: UnitOfWork, who: Principal, provider_id: str, emails: Sequence[str],
                            events: Sequence[str]) -> RecipientsView:
    """Replace the reseller's default, used by every customer without recipients of its own."""
    with uow:
        s = uow.session
        provider = scope.provider(s, who, provider_id)
        scope.require_manager(who, "change the reseller's notification recipients")
        view = _put(s, emails, events, service_provider_id=provider.id)
        audit.record(s, who.actor, "service_provider.notifications.updated", "service_provider", provider.id,
                     {"emails": view.emails, "events": view.events})
        uow.commit()
        return view


def audiences(session: Session, event: str, *, customer_id: str | None,
              service_provider_id: str | None, operator: str | None = None) -> list[Audience]:
    """Who gets an email about `event`: the customer's own recipients (password allowed) or else the
    reseller's default, and the operator's address; each address once. One query (it runs for every
    provisioned user)."""
    owners = [NotificationRecipients.service_provider_id == service_provider_id] if service_provider_id else []
    if customer_id:
        owners.append(NotificationRecipients.customer_id == customer_id)
    rows = session.scalars(select(NotificationRecipients).where(or_(*owners))).all() if owners else []
    own = next((r for r in rows if customer_id and r.customer_id == customer_id), None)
    chosen = own or next((r for r in rows if r.customer_id is None), None)
    out: list[Audience] = []
    if chosen is not None and event in chosen.events and chosen.emails:
        out.append(Audience(tuple(chosen.emails), password=own is not None))
    taken = {e.lower() for a in out for e in a.emails}
    if operator and operator.lower() not in taken:
        out.append(Audience((operator,), password=False))
    return out


def _row(s: Session, *, customer_id: str | None = None,
         service_provider_id: str | None = None) -> NotificationRecipients | None:
    column = NotificationRecipients.customer_id if customer_id else NotificationRecipients.service_provider_id
    return s.scalar(select(NotificationRecipients).where(column == (customer_id or service_provider_id)))


def _put(s: Session, emails: Sequence[str], events: Sequence[str], *, customer_id: str | None = None,
         service_provider_id: str | None = None) -> RecipientsView:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise InvalidInput(f"unknown notification event(s): {', '.join(unknown)}",
                           [{"loc": ["body", "events"], "msg": f"one of {', '.join(EVENTS)}", "type": "enum"}])
    column = NotificationRecipients.customer_id if customer_id else NotificationRecipients.service_provider_id
    row = s.scalar(select(NotificationRecipients).where(column == (customer_id or service_provider_id))
                   .with_for_update())
    if row is None:
        row = NotificationRecipients(customer_id=customer_id, service_provider_id=service_provider_id)
        s.add(row)
    row.emails = list(dict.fromkeys(e.strip().lower() for e in emails))
    row.events = [e for e in EVENTS if e in set(events)]
    return RecipientsView(list(row.emails), list(row.events), "customer" if customer_id else "service_provider")
