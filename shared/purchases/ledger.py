"""The purchase ledger: one row per purchase, every request it buys for, and its way to Graph.

Rows of one customer and SKU are decided under the lock of its TenantSku row (shared.seats.ledger.lock_skus)
and sent one after the other: Partner Center takes an absolute quantity, so a purchase is sent only once
every earlier one of its SKU is confirmed (its quantity is read after theirs).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import Purchase

PENDING, SENT, CONFIRMED, VISIBLE, FAILED = "pending", "sent", "confirmed", "visible", "failed"
UNFINISHED = (PENDING, SENT, CONFIRMED)
QUANTITY, ORDER = "quantity", "order"


def unfinished(session: Session, customer_id: str, sku_part_number: str, *, lock: bool = False) -> list[Purchase]:
    """The SKU's purchases Graph does not show yet, oldest first."""
    stmt = (select(Purchase).where(Purchase.customer_id == customer_id, Purchase.sku_part_number == sku_part_number,
                                   Purchase.state.in_(UNFINISHED))
            .order_by(Purchase.created_at, Purchase.id))
    return list(session.scalars(stmt.with_for_update() if lock else stmt))


def of_request(session: Session, customer_id: str, sku_part_number: str, request_id: str) -> Purchase | None:
    """The purchase that buys for this request, if any: a request is in one purchase per SKU at most."""
    rows = session.scalars(select(Purchase).where(Purchase.customer_id == customer_id,
                                                  Purchase.sku_part_number == sku_part_number,
                                                  Purchase.state != FAILED))
    return next((p for p in rows if request_id in (p.request_ids or [])), None)


def units_in_flight(rows: list[Purchase]) -> int:
    return sum(p.units for p in rows)


def bought_since(session: Session, customer_id: str, since: datetime) -> int:
    """Units bought (or on their way) for the customer since `since`, every SKU: the daily cap's count."""
    return int(session.scalar(select(func.coalesce(func.sum(Purchase.units), 0)).where(
        Purchase.customer_id == customer_id, Purchase.state != FAILED, Purchase.created_at >= since)) or 0)


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def join_or_create(session: Session, *, customer_id: str, sku_part_number: str, sku_id: str | None, units: int,
                   request_id: str, now: datetime, batch_s: float, max_per_order: int | None,
                   kind: str = QUANTITY, offer_id: str | None = None) -> Purchase:
    """Add `units` for `request_id` to the SKU's purchase still collecting (pending, younger than batch_s,
    with room under max_per_order), else start one. The caller holds the SKU's lock."""
    for p in unfinished(session, customer_id, sku_part_number, lock=True):
        fits = max_per_order is None or p.units + units <= max_per_order
        if p.state == PENDING and p.kind == kind and p.created_at >= now - timedelta(seconds=batch_s) and fits:
            p.units += units
            p.request_ids = [*p.request_ids, request_id]
            p.updated_at = now
            return p
    row = Purchase(customer_id=customer_id, kind=kind, sku_part_number=sku_part_number, sku_id=sku_id, units=units,
                   offer_id=offer_id, request_ids=[request_id], state=PENDING, expected_total=0,
                   created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def expected_total_after(session: Session, purchase: Purchase, graph_total: int) -> int:
    """What Graph's enabled seats will be once `purchase` shows: after every earlier purchase of the SKU."""
    earlier = session.scalar(select(func.max(Purchase.expected_total)).where(
        Purchase.customer_id == purchase.customer_id, Purchase.sku_part_number == purchase.sku_part_number,
        Purchase.state.in_((SENT, CONFIRMED)), Purchase.id != purchase.id))
    return max(graph_total, int(earlier or 0)) + purchase.units


def view(p: Purchase) -> dict[str, Any]:
    return {"id": p.id, "customer_id": p.customer_id, "kind": p.kind, "sku_part_number": p.sku_part_number,
            "sku_id": p.sku_id, "subscription_id": p.subscription_id, "offer_id": p.offer_id, "units": p.units,
            "from_quantity": p.from_quantity, "to_quantity": p.to_quantity, "request_ids": list(p.request_ids or []),
            "ms_request_id": p.ms_request_id, "order_id": p.order_id, "state": p.state, "error": p.error,
            "created_at": p.created_at, "updated_at": p.updated_at, "sent_at": p.sent_at,
            "confirmed_at": p.confirmed_at, "visible_at": p.visible_at}


def of_customer(session: Session, customer_id: str, limit: int = 500) -> list[Purchase]:
    return list(session.scalars(select(Purchase).where(Purchase.customer_id == customer_id)
                                .order_by(Purchase.created_at.desc(), Purchase.id).limit(limit)))
