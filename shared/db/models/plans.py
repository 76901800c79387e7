"""Customer plans, user plans and the licences (SKUs) a user plan grants."""
from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType, Json


class CustomerPlan(IdMixin, TimestampMixin, Base):
    __tablename__ = "customer_plans"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class UserPlan(IdMixin, TimestampMixin, Base):
    __tablename__ = "user_plans"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    licences: Mapped[list[UserPlanLicence]] = relationship(
        back_populates="user_plan", cascade="all, delete-orphan", order_by="UserPlanLicence.position",
        lazy="selectin")


class UserPlanLicence(IdMixin, Base):
    __tablename__ = "user_plan_licences"
    __table_args__ = (UniqueConstraint("user_plan_id", "sku_part_number"),)

    user_plan_id: Mapped[str] = mapped_column(IdType, ForeignKey("user_plans.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    sku_part_number: Mapped[str] = mapped_column(String(120))
    disabled_service_plans: Mapped[list[str]] = mapped_column(Json, default=list)
    # The Partner Center catalog item that sells this SKU: lets a direct reseller order it for a tenant without it.
    offer_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_plan: Mapped[UserPlan] = relationship(back_populates="licences")
