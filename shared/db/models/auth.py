"""API keys (hashed at rest), audit events and stored idempotent answers."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin
from shared.db.types import IdType, Json, UTCDateTime, utcnow


class ApiKey(IdMixin, Base):
    __tablename__ = "api_keys"

    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # looked up, then the hash compared
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(24))  # operator | service-provider | customer
    scope_id: Mapped[str | None] = mapped_column(IdType, nullable=True)
    name: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # None: never


class AuditEvent(IdMixin, Base):
    __tablename__ = "audit_events"

    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True)  # api key id, "system" or a task
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)


class IdempotentAnswer(Base):
    __tablename__ = "idempotent_answers"

    api_key_id: Mapped[str] = mapped_column(IdType, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # method, path and body hash
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
