"""Guide rules for customers: notification recipients, and request secrets shown once

Revision ID: 0006_guide_customers
Revises: 0004_dispatch
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.db.types import UTCDateTime

revision: str = "0006_guide_customers"
down_revision: str | None = "0004_dispatch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Additive only: the previous release never reads these tables.
    op.create_table(
        "notification_recipients",
        sa.Column("service_provider_id", sa.String(length=36), nullable=True),
        sa.Column("customer_id", sa.String(length=36), nullable=True),
        sa.Column("emails", _JSON, nullable=False),
        sa.Column("events", _JSON, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(service_provider_id IS NULL) <> (customer_id IS NULL)",
                           name=op.f("ck_notification_recipients_one_owner")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_notification_recipients_customer_id_customers"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_provider_id"], ["service_providers.id"],
                                name=op.f("fk_notification_recipients_service_provider_id_service_providers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_recipients")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_notification_recipients_customer_id")),
        sa.UniqueConstraint("service_provider_id", name=op.f("uq_notification_recipients_service_provider_id")),
    )
    op.create_table(
        "request_secrets",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["provisioning_requests.id"],
                                name=op.f("fk_request_secrets_request_id_provisioning_requests"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("request_id", "name", name=op.f("pk_request_secrets")),
    )


def downgrade() -> None:
    op.drop_table("request_secrets")
    op.drop_table("notification_recipients")
