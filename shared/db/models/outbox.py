"""The notification outbox: written in the transaction of the event, sent later by a task."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base, IdMixin
from shared.db.types import Json, UTCDateTime, utcnow


class OutboxMessage(IdMixin, Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)

    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    topic: Mapped[str] = mapped_column(String(60))  # user.provisioned, request.failed, request.state_changed
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    # The temporary password for the "user provisioned" email, encrypted; wiped once sent.
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
