"""What a confirmed purchase tells people: an email (outbox) to the customer's or reseller's recipients who
asked for `purchased`, and the operator."""
from __future__ import annotations

from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest, Purchase
from shared.notifications import outbox
from shared.notifications.email import SEATS_PURCHASED
from shared.notifications.recipients import PURCHASED, audiences
from shared.settings import get_settings


def purchased(session: Session, p: Purchase, req: ProvisioningRequest) -> int:
    found = audiences(session, PURCHASED, customer_id=p.customer_id, service_provider_id=req.service_provider_id,
                      operator=get_settings().notify_email_to)
    payload = {"event": PURCHASED, "purchase_id": p.id, "customer_id": p.customer_id,
               "sku_part_number": p.sku_part_number, "units": p.units, "from_quantity": p.from_quantity,
               "to_quantity": p.to_quantity, "request_ids": list(p.request_ids or [])}
    for audience in found:
        outbox.enqueue(session, outbox.EMAIL, SEATS_PURCHASED, {**payload, "to": ", ".join(audience.emails)})
    return len(found)
