"""Customers, their tenant connection, agreement, services, plan enablement and SKU ledger."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType, Json, UTCDateTime


class Customer(IdMixin, TimestampMixin, Base):
    __tablename__ = "customers"

    service_provider_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("service_providers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    customer_plan_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("customer_plans.id"), nullable=True)


class TenantConnection(IdMixin, TimestampMixin, Base):
    """The customer's Entra tenant as Partner Center and Graph describe it."""

    __tablename__ = "tenant_connections"

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    company_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    initial_domain: Mapped[str | None] = mapped_column(String(255), nullable=True)
    verified_domains: Mapped[list[str]] = mapped_column(Json, default=list)
    state: Mapped[str] = mapped_column(String(16), default="connecting")  # connecting|connected|failed
    gdap_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the engine granted (or found) the partner app's CPV consent in the tenant.
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What check_gdap last read: the active relationships' role template ids and when the last one ends.
    gdap_roles: Mapped[list[str] | None] = mapped_column(Json, nullable=True)
    gdap_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Agreement(IdMixin, TimestampMixin, Base):
    """The customer's Microsoft Customer Agreement as last seen in (or recorded to) Partner Center."""

    __tablename__ = "agreements"

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"), unique=True)
    signed: Mapped[bool] = mapped_column(Boolean, default=False)
    date_agreed: Mapped[str | None] = mapped_column(String(40), nullable=True)
    primary_contact: Mapped[dict[str, str] | None] = mapped_column(Json, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CustomerService(IdMixin, TimestampMixin, Base):
    __tablename__ = "customer_services"
    __table_args__ = (UniqueConstraint("customer_id", "service"),)

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(32))  # azure_ad | microsoft_online
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|provisioning|provisioned|failed
    request_id: Mapped[str | None] = mapped_column(IdType, nullable=True)


class PlanEnablement(IdMixin, TimestampMixin, Base):
    """A user plan the customer may hand out, with an optional hard limit on users."""

    __tablename__ = "plan_enablements"
    __table_args__ = (UniqueConstraint("customer_id", "user_plan_id"),)

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    user_plan_id: Mapped[str] = mapped_column(IdType, ForeignKey("user_plans.id"))
    hard_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)


class TenantSku(IdMixin, Base):
    """Microsoft's seat counts for one SKU of the tenant, refreshed by sync and by licence checks."""

    __tablename__ = "tenant_skus"
    __table_args__ = (UniqueConstraint("customer_id", "sku_part_number"),)

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    sku_id: Mapped[str] = mapped_column(String(64))
    sku_part_number: Mapped[str] = mapped_column(String(120))
    total: Mapped[int] = mapped_column(Integer, default=0)
    consumed: Mapped[int] = mapped_column(Integer, default=0)
    service_plans: Mapped[list[str]] = mapped_column(Json, default=list)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
