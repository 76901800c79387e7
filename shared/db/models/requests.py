"""Durable provisioning requests and their steps: Postgres holds the truth, messages only nudge."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType, Json, UTCDateTime


class ProvisioningRequest(IdMixin, TimestampMixin, Base):
    __tablename__ = "provisioning_requests"
    __table_args__ = (Index("ix_requests_state_next", "state", "next_attempt_at"),
                      Index("ix_requests_state_lease", "state", "lease_until"),
                      Index("ix_requests_customer", "customer_id", "state"))

    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    # queued | running | waiting | blocked | succeeded | failed | cancelled
    service_provider_id: Mapped[str | None] = mapped_column(IdType, nullable=True, index=True)
    customer_id: Mapped[str | None] = mapped_column(IdType, nullable=True)
    user_id: Mapped[str | None] = mapped_column(IdType, nullable=True, index=True)
    parent_id: Mapped[str | None] = mapped_column(IdType, nullable=True, index=True)
    params: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # never secrets
    context: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # what steps learned
    current_step: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliveries: Mapped[int] = mapped_column(Integer, default=0)
    # Consecutive short retries (throttled, transient) of the current step; reset when it moves on.
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Every chain published for the request carries this generation; a message of an older one is a
    # stale copy (its chain was re-driven since) and stops at its claim.
    dispatch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Consecutive re-drives without a claim between them: each waits twice as long as the one before.
    redrives: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The current step must not run before this (a short wait between two steps of one chain).
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    blocked_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(IdType, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    steps: Mapped[list[RequestStep]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="RequestStep.position", lazy="selectin")


class RequestStep(IdMixin, Base):
    __tablename__ = "request_steps"
    __table_args__ = (UniqueConstraint("request_id", "position"),)

    request_id: Mapped[str] = mapped_column(IdType, ForeignKey("provisioning_requests.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # pending | running | waiting | succeeded | failed | skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    microsoft_error: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    request: Mapped[ProvisioningRequest] = relationship(back_populates="steps")
