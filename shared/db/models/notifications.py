"""Who is emailed about what: a customer's own recipients, or its reseller's default."""
from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType, Json


class NotificationRecipients(IdMixin, TimestampMixin, Base):
    """Email addresses and the events they get; owned by exactly one customer or one service provider."""

    __tablename__ = "notification_recipients"
    __table_args__ = (CheckConstraint("(service_provider_id IS NULL) <> (customer_id IS NULL)", name="one_owner"),)

    service_provider_id: Mapped[str | None] = mapped_column(
        IdType, ForeignKey("service_providers.id", ondelete="CASCADE"), nullable=True, unique=True)
    customer_id: Mapped[str | None] = mapped_column(
        IdType, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True, unique=True)
    emails: Mapped[list[str]] = mapped_column(Json, default=list)
    events: Mapped[list[str]] = mapped_column(Json, default=list)  # provisioned | failed | blocked
