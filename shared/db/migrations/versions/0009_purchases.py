"""Seat purchases for direct resellers: the purchase ledger, purchase policies, offers on user-plan licences

Revision ID: 0009_purchases
Revises: 0008_security
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.db.types import UTCDateTime

revision: str = "0009_purchases"
down_revision: str | None = "0008_security"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "purchase_policies",
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("service_provider_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("max_units_per_day", sa.Integer(), nullable=True),
        sa.Column("max_units_per_order", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_purchase_policies_customer_id_customers"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_provider_id"], ["service_providers.id"],
                                name=op.f("fk_purchase_policies_service_provider_id_service_providers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_purchase_policies")),
    )
    op.create_table(
        "purchases",
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sku_part_number", sa.String(length=120), nullable=False),
        sa.Column("sku_id", sa.String(length=64), nullable=True),
        sa.Column("subscription_id", sa.String(length=64), nullable=True),
        sa.Column("offer_id", sa.String(length=200), nullable=True),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("from_quantity", sa.Integer(), nullable=True),
        sa.Column("to_quantity", sa.Integer(), nullable=True),
        sa.Column("expected_total", sa.Integer(), nullable=False),
        sa.Column("request_ids", _JSON, nullable=False),
        sa.Column("ms_request_id", sa.String(length=64), nullable=True),
        sa.Column("cart_id", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("visible_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_purchases_customer_id_customers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
    )
    op.create_index("ix_purchases_customer_sku_state", "purchases", ["customer_id", "sku_part_number", "state"])
    # Nullable: a licence without an offer buys only more of a subscription the tenant has.
    with op.batch_alter_table("user_plan_licences") as batch:
        batch.add_column(sa.Column("offer_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_plan_licences") as batch:
        batch.drop_column("offer_id")
    op.drop_index("ix_purchases_customer_sku_state", table_name="purchases")
    op.drop_table("purchases")
    op.drop_table("purchase_policies")
