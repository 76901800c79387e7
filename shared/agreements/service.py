"""Reading the MCA live (and remembering it) and recording it, which releases requests blocked on it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import audit
from shared.agreements.contact import contact_view
from shared.agreements.mca import MCA_NOT_SIGNED, AgreementView, read_live, remember
from shared.auth import scope
from shared.auth.principal import Principal
from shared.customers import context, live, live_reads
from shared.db.models import ServiceProvider
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.idempotency import Answer, Idempotency, answer_once
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import resume_blocked


@dataclass(frozen=True)
class Contact:
    first_name: str
    last_name: str
    email: str
    phone: str | None = None

    def as_partner_center(self) -> dict[str, str]:
        out = {"firstName": self.first_name, "lastName": self.last_name, "email": self.email}
        if self.phone:
            out["phoneNumber"] = self.phone
        return out


def read_agreement(uow: UnitOfWork, who: Principal, customer_id: str) -> AgreementView:
    """The MCA as Partner Center has it now; the local row is updated to match."""
    with uow:
        s = uow.session
        ctx = context.load(s, who, customer_id)
        tenant_id = ctx.require_connected()
        provider = s.get(ServiceProvider, ctx.service_provider_id)
        assert provider is not None
        view = live_reads.read(customer_id, ("agreement", tenant_id), lambda: read_live(provider, tenant_id))
        remember(s, customer_id, view, utcnow())
        uow.commit()
        return view


def record_agreement(uow: UnitOfWork, who: Principal, customer_id: str, contact: Contact, date_agreed: str | None,
                     *, idem: Idempotency | None, present: Callable[[AgreementView], Any]) -> Answer:
    """Record the MCA in Partner Center (already recorded counts as done), then resume blocked requests."""

    def work(uow: UnitOfWork) -> AgreementView:
        s = uow.session
        ctx = context.load(s, who, customer_id)
        scope.require_manager(who, "record the customer's agreement")
        tenant_id = ctx.require_connected()
        provider = s.get(ServiceProvider, ctx.service_provider_id)
        assert provider is not None
        with live.microsoft_call("recording the customer's agreement"):
            recorded = live.partner_center(provider).record_agreement(tenant_id, contact.as_partner_center(),
                                                                      date_agreed)
        agreed = (recorded or {}).get("dateAgreed") or date_agreed or utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        view = AgreementView(True, agreed, contact_view(contact.as_partner_center()))
        remember(s, customer_id, view, utcnow())
        audit.record(s, who.actor, "customer.agreement.recorded", "customer", customer_id,
                     {"date_agreed": agreed, "contact_email": contact.email,
                      "already_recorded": recorded is None})
        publish_after_commit(uow, resume_blocked(s, customer_id=customer_id, reason=MCA_NOT_SIGNED))
        return view

    answered = answer_once(uow, idem, 201, work, present)
    live_reads.forget(customer_id)  # this process's next read shows it signed at once
    return answered
