"""Users, their services and the seats reserved for them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType, Json, UTCDateTime


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("customer_id", "upn"),
                      Index("ix_users_customer_entra", "customer_id", "entra_id"))

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    upn: Mapped[str] = mapped_column(String(255))  # lower-cased; the UPN the engine holds
    first_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    display_name: Mapped[str] = mapped_column(String(256))
    usage_location: Mapped[str | None] = mapped_column(String(2), nullable=True)
    aliases: Mapped[list[str]] = mapped_column(Json, default=list)
    entra_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    entra_upn: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # active | deleted_in_entra ; provisioning state lives on UserService
    state: Mapped[str] = mapped_column(String(24), default="active")
    source: Mapped[str] = mapped_column(String(16), default="local")  # local | imported | adopted
    # How the engine came to hold the Entra account (shared.users.adoption): created (by a create of
    # its own), adopted (an account that existed, linked by the user's own UPN under a reseller or
    # operator key) or synced (linked or imported by the sync). NULL: not linked, or not known.
    entra_origin: Mapped[str | None] = mapped_column(String(16), nullable=True)
    licences: Mapped[list[str]] = mapped_column(Json, default=list)  # sku part numbers seen in Entra
    matched_user_plan_id: Mapped[str | None] = mapped_column(IdType, nullable=True)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserService(IdMixin, TimestampMixin, Base):
    """Microsoft Online for one user: the plan, its state and, until delivered, the encrypted password."""

    __tablename__ = "user_services"
    __table_args__ = (UniqueConstraint("user_id", "service"),)

    user_id: Mapped[str] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    service: Mapped[str] = mapped_column(String(32), default="microsoft_online")
    user_plan_id: Mapped[str | None] = mapped_column(IdType, ForeignKey("user_plans.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # pending | provisioning | provisioned | deprovisioning | deprovisioned | failed
    temp_password_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    request_id: Mapped[str | None] = mapped_column(IdType, nullable=True)


class SeatReservation(IdMixin, TimestampMixin, Base):
    """A seat held for a pending request: free = Microsoft's free units - held reservations."""

    __tablename__ = "seat_reservations"
    __table_args__ = (UniqueConstraint("request_id", "sku_part_number"),
                      Index("ix_seat_reservations_customer_state", "customer_id", "sku_part_number", "state"))

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(IdType, ForeignKey("provisioning_requests.id", ondelete="CASCADE"))
    sku_part_number: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(16), default="held")  # held | consumed | released
    extra: Mapped[dict[str, str] | None] = mapped_column(Json, nullable=True)


class SeatHold(Base):
    """How many seats of a SKU a customer's pending requests hold, kept by triggers on seat_reservations.

    Counting held reservations at every accept grew with the backlog (10,000 pending: 2.4 ms of
    PostgreSQL per accept); this is a sum over at most STRIPES rows. Striped so that concurrent
    accepts for one customer rarely wait on the same row: each reservation counts in the stripe
    its id hashes to (PostgreSQL), or stripe 0 (SQLite, one writer at a time anyway). The triggers
    are in migration 0003; nothing else writes here.
    """

    __tablename__ = "seat_holds"

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"),
                                             primary_key=True)
    sku_part_number: Mapped[str] = mapped_column(String(120), primary_key=True)
    stripe: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    held: Mapped[int] = mapped_column(Integer, default=0)
