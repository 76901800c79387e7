"""Requests: a dispatch generation carried in their messages, re-drive count, not-before for the next step

Revision ID: 0004_dispatch
Revises: 0003_seat_holds
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db.types import UTCDateTime

revision: str = "0004_dispatch"
down_revision: str | None = "0003_seat_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provisioning_requests") as batch:
        batch.add_column(sa.Column("dispatch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("redrives", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("not_before", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("provisioning_requests") as batch:
        batch.drop_column("not_before")
        batch.drop_column("redrives")
        batch.drop_column("dispatch")
