"""API keys may expire

Revision ID: 0008_security
Revises: 0007_tenant_access
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0008_security"
down_revision: str | None = "0007_tenant_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a key without an expiry never expires, and the previous release ignores the column.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", shared.db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
