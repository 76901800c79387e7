"""What Partner Center's agreement list says about the MCA, and keeping that on the customer's Agreement row."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shared.agreements.contact import contact_view
from shared.customers import live
from shared.db.models import Agreement, ServiceProvider
from shared.db.types import new_id
from shared.upsert import upsert

MCA_TYPE = "MicrosoftCustomerAgreement"
MCA_TEMPLATE_ID = "117a77b0-9360-443b-8795-c6dedc750cf9"
MCA_NOT_SIGNED = "mca_not_signed"


@dataclass(frozen=True)
class AgreementView:
    signed: bool
    date_agreed: str | None
    primary_contact: dict[str, Any] | None


def is_mca(item: dict[str, Any]) -> bool:
    """An item of the list asked for with agreementType=MicrosoftCustomerAgreement: untyped ones count."""
    kind = item.get("type") or item.get("agreementType") or MCA_TYPE
    return kind == MCA_TYPE or item.get("templateId") == MCA_TEMPLATE_ID


def view_of(items: list[dict[str, Any]]) -> AgreementView:
    """The latest MCA among Partner Center's agreement items; none means not signed."""
    items = [i for i in items if is_mca(i)]
    if not items:
        return AgreementView(False, None, None)
    latest = max(items, key=lambda i: str(i.get("dateAgreed") or ""))
    return AgreementView(True, latest.get("dateAgreed"), contact_view(latest.get("primaryContact") or {}))


def read_live(provider: ServiceProvider, tenant_id: str) -> AgreementView:
    """Partner Center's word now, for a caller who waits (short retry budget; errors for the API caller)."""
    with live.microsoft_call("reading the customer's agreement"):
        return view_of(live.partner_center(provider).get_agreements(tenant_id))


def remember(session: Session, customer_id: str, view: AgreementView, now: datetime) -> None:
    """Store what was read (or recorded) and when; concurrent first writes are safe."""
    upsert(session, Agreement, [{"id": new_id(), "customer_id": customer_id, "signed": view.signed,
                                 "date_agreed": view.date_agreed, "primary_contact": view.primary_contact,
                                 "checked_at": now, "created_at": now, "updated_at": now}],
           keys=("customer_id",), update=("signed", "date_agreed", "primary_contact", "checked_at", "updated_at"))
