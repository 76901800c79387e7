"""Sync policies and sync runs per customer."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin, TimestampMixin
from shared.db.types import IdType, UTCDateTime


class SyncPolicy(TimestampMixin, Base):
    __tablename__ = "sync_policies"

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_minutes: Mapped[int] = mapped_column(Integer, default=60)
    import_unknown_users: Mapped[bool] = mapped_column(Boolean, default=True)
    master: Mapped[str] = mapped_column(String(16), default="microsoft")  # local | microsoft
    delta_link: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SyncRun(IdMixin, Base):
    __tablename__ = "sync_runs"

    customer_id: Mapped[str] = mapped_column(IdType, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|succeeded|failed
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")  # schedule | manual
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
