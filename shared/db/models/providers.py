"""Service providers (resellers), their Partner Center connection and their services."""
from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType


class ServiceProvider(IdMixin, TimestampMixin, Base):
    __tablename__ = "service_providers"

    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="indirect")  # indirect | direct
    pc_tenant_id: Mapped[str] = mapped_column(String(64))
    pc_client_id: Mapped[str] = mapped_column(String(64))
    # Encrypted with SECRET_KEY (shared.security); never returned by the API.
    pc_client_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    pc_refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ProviderService(IdMixin, TimestampMixin, Base):
    """azure_ad or microsoft_online at reseller level; microsoft_online depends on azure_ad."""

    __tablename__ = "provider_services"
    __table_args__ = (UniqueConstraint("service_provider_id", "service"),)

    service_provider_id: Mapped[str] = mapped_column(IdType, ForeignKey("service_providers.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|provisioning|provisioned|failed
    request_id: Mapped[str | None] = mapped_column(IdType, nullable=True)


class ProviderCustomerPlan(Base):
    __tablename__ = "provider_customer_plans"

    service_provider_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("service_providers.id", ondelete="CASCADE"), primary_key=True)
    customer_plan_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("customer_plans.id", ondelete="CASCADE"), primary_key=True)


class ProviderUserPlan(Base):
    __tablename__ = "provider_user_plans"

    service_provider_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("service_providers.id", ondelete="CASCADE"), primary_key=True)
    user_plan_id: Mapped[str] = mapped_column(IdType, ForeignKey("user_plans.id", ondelete="CASCADE"), primary_key=True)
