"""Users: how the engine came to hold each Entra account (created, adopted, synced)

Revision ID: 0006_guide_users
Revises: 0005_guide_customers
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_guide_users"
down_revision: str | None = "0005_guide_customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Users of the previous release: a request that confirmed its own create made the account; the sync
# linked the imported ones; any other link stays unknown (NULL), which the engine treats as not vetted.
_CREATED_PG = """
UPDATE users SET entra_origin = 'created'
 WHERE entra_id IS NOT NULL AND EXISTS (
       SELECT 1 FROM provisioning_requests r
        WHERE r.user_id = users.id AND r.kind = 'user.provision'
          AND (r.context::jsonb ->> 'user_created') = 'true')
"""
_CREATED_SQLITE = """
UPDATE users SET entra_origin = 'created'
 WHERE entra_id IS NOT NULL AND EXISTS (
       SELECT 1 FROM provisioning_requests r
        WHERE r.user_id = users.id AND r.kind = 'user.provision'
          AND json_extract(r.context, '$.user_created') = 1)
"""


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("entra_origin", sa.String(length=16), nullable=True))
    op.execute(_CREATED_PG if op.get_bind().dialect.name == "postgresql" else _CREATED_SQLITE)
    op.execute("UPDATE users SET entra_origin = 'synced' WHERE entra_origin IS NULL AND entra_id IS NOT NULL "
               "AND source = 'imported'")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("entra_origin")
