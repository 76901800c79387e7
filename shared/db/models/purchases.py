"""Seats bought for direct resellers' customers (the purchase ledger) and the limits they buy within."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType, Json, UTCDateTime


class PurchasePolicy(TimestampMixin, Base):
    """May the engine buy seats, and how many. One row per customer, or the reseller's default
    (customer_id NULL, owner_id = the provider's id); no row: buying is off."""

    __tablename__ = "purchase_policies"

    owner_id: Mapped[str] = mapped_column(IdType, primary_key=True)  # the customer's id, or the provider's
    service_provider_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("service_providers.id", ondelete="CASCADE"))
    customer_id: Mapped[str | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    max_units_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)  # NULL: no cap
    max_units_per_order: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Purchase(IdMixin, TimestampMixin, Base):
    """One purchase: a subscription's quantity raised (kind quantity) or a new subscription ordered (kind order).

    state: pending (collecting requests, nothing sent) -> sent (target and MS-RequestId committed before
    the call) -> confirmed (Partner Center has it) -> visible (Graph shows the seats); or failed.
    """

    __tablename__ = "purchases"
    __table_args__ = (Index("ix_purchases_customer_sku_state", "customer_id", "sku_part_number", "state"),)

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="quantity")  # quantity | order
    sku_part_number: Mapped[str] = mapped_column(String(120))
    sku_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subscription_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    offer_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    units: Mapped[int] = mapped_column(Integer, default=0)
    from_quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Graph's enabled seats of the SKU once this purchase shows there.
    expected_total: Mapped[int] = mapped_column(Integer, default=0)
    request_ids: Mapped[list[str]] = mapped_column(Json, default=list)
    ms_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cart_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    visible_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
