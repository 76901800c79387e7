"""Tenant access: when the partner app's consent was granted, and the GDAP roles and end last seen

Revision ID: 0007_tenant_access
Revises: 0006_guide_users
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db.types

revision: str = "0007_tenant_access"
down_revision: str | None = "0006_guide_users"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: the previous release neither writes nor reads them.
    with op.batch_alter_table("tenant_connections") as batch:
        batch.add_column(sa.Column("consented_at", shared.db.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("gdap_roles", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                                   nullable=True))
        batch.add_column(sa.Column("gdap_ends_at", shared.db.types.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenant_connections") as batch:
        batch.drop_column("gdap_ends_at")
        batch.drop_column("gdap_roles")
        batch.drop_column("consented_at")
