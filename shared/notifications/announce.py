"""Request events as emails in the outbox: one row per audience (shared.notifications.recipients), written in
the transaction that records the event; the password, encrypted, only on the customer's own row."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest
from shared.notifications import outbox
from shared.notifications.email import REQUEST_BLOCKED, REQUEST_FAILED, REQUEST_PROVISIONED, USER_PROVISIONED
from shared.notifications.recipients import BLOCKED, FAILED, PROVISIONED, Audience, audiences
from shared.requests import kinds
from shared.settings import Settings, get_settings

# The requests whose success is news: something was provisioned (not a sync, not a deprovisioning).
PROVISIONING_KINDS = frozenset({kinds.USER_PROVISION, kinds.CUSTOMER_AZURE_AD, kinds.CUSTOMER_MICROSOFT_ONLINE,
                                kinds.CUSTOMER_ONBOARD, kinds.PROVIDER_AZURE_AD, kinds.PROVIDER_MICROSOFT_ONLINE})
# A child of a failed onboarding fails with it: the parent's email says so once, not once per user.
_QUIET_FAILURES = frozenset({"parent_failed"})


def audiences_for(session: Session, req: ProvisioningRequest, event: str,
                  settings: Settings | None = None) -> list[Audience]:
    """Who hears about `event` of `req` ([] when it is no news: a sync succeeding, a child of a failed onboarding)."""
    if event == PROVISIONED and req.kind not in PROVISIONING_KINDS:
        return []
    if event == FAILED and req.error_code in _QUIET_FAILURES:
        return []
    return audiences(session, event, customer_id=req.customer_id, service_provider_id=req.service_provider_id,
                     operator=(settings or get_settings()).notify_email_to)


def announce(session: Session, req: ProvisioningRequest, event: str, *, to: list[Audience] | None = None,
             details: dict[str, Any] | None = None, password: str | None = None,
             settings: Settings | None = None) -> int:
    """Queue the emails for `event` of `req` (to `to`, or as audiences_for finds); returns how many.
    `password` goes only to the customer's own recipients (pass it only when the engine set it)."""
    found = audiences_for(session, req, event, settings) if to is None else to
    payload = {**outbox.request_payload(req), **(details or {}), "event": event}
    if event == BLOCKED:
        payload["blocked_reason"] = req.blocked_reason
    for audience in found:
        secret = password if audience.password else None
        outbox.enqueue(session, outbox.EMAIL, _topic(req, event),
                       {**payload, "to": ", ".join(audience.emails), "password_included": secret is not None},
                       secret=secret)
    return len(found)


def _topic(req: ProvisioningRequest, event: str) -> str:
    if event == PROVISIONED:
        return USER_PROVISIONED if req.kind == kinds.USER_PROVISION else REQUEST_PROVISIONED
    return REQUEST_BLOCKED if event == BLOCKED else REQUEST_FAILED
