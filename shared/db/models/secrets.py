"""Secrets a request produced for one reader: encrypted until shown once, then deleted."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.models.base import Base
from shared.db.types import IdType, UTCDateTime, utcnow


class RequestSecret(Base):
    """E.g. a new tenant's admin credentials from Partner Center (`tenant_admin`), encrypted with SECRET_KEY."""

    __tablename__ = "request_secrets"

    request_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("provisioning_requests.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
