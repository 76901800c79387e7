"""Seat holds: held reservations counted by triggers, so an accept reads a sum, not the whole backlog

Revision ID: 0003_seat_holds
Revises: 0002_pipeline
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_seat_holds"
down_revision: str | None = "0002_pipeline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STRIPES = 32  # PostgreSQL: a reservation counts in stripe hashtext(id) & (STRIPES - 1)

# Statement-level triggers with transition tables: a 1,000-user bulk insert is one upsert of a few
# rows, not 1,000. Rows are upserted in key order, so two transactions never lock stripes in
# opposite orders. Decrements only UPDATE: a delete cascading from the customer finds no row.
_PG_FUNCTIONS = """
CREATE FUNCTION seat_holds_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seat_holds AS h (customer_id, sku_part_number, stripe, held)
    SELECT customer_id, sku_part_number, hashtext(id) & {mask}, count(*)::int
      FROM new_rows WHERE state = 'held'
     GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (customer_id, sku_part_number, stripe) DO UPDATE SET held = h.held + excluded.held;
    RETURN NULL;
END $$;

CREATE FUNCTION seat_holds_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seat_holds AS h (customer_id, sku_part_number, stripe, held)
    SELECT customer_id, sku_part_number, stripe, sum(delta)::int FROM (
        SELECT customer_id, sku_part_number, hashtext(id) & {mask} AS stripe, 1 AS delta
          FROM new_rows WHERE state = 'held'
        UNION ALL
        SELECT customer_id, sku_part_number, hashtext(id) & {mask}, -1
          FROM old_rows WHERE state = 'held'
    ) d
     GROUP BY 1, 2, 3 HAVING sum(delta) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (customer_id, sku_part_number, stripe) DO UPDATE SET held = h.held + excluded.held;
    RETURN NULL;
END $$;

CREATE FUNCTION seat_holds_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE seat_holds h SET held = h.held - d.n
      FROM (SELECT customer_id, sku_part_number, hashtext(id) & {mask} AS stripe, count(*)::int AS n
              FROM old_rows WHERE state = 'held' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3) d
     WHERE h.customer_id = d.customer_id AND h.sku_part_number = d.sku_part_number AND h.stripe = d.stripe;
    RETURN NULL;
END $$;

CREATE TRIGGER seat_holds_on_insert AFTER INSERT ON seat_reservations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION seat_holds_add();
CREATE TRIGGER seat_holds_on_update AFTER UPDATE ON seat_reservations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION seat_holds_change();
CREATE TRIGGER seat_holds_on_delete AFTER DELETE ON seat_reservations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION seat_holds_remove();
""".replace("{mask}", str(STRIPES - 1))

_PG_DROP = """
DROP TRIGGER IF EXISTS seat_holds_on_insert ON seat_reservations;
DROP TRIGGER IF EXISTS seat_holds_on_update ON seat_reservations;
DROP TRIGGER IF EXISTS seat_holds_on_delete ON seat_reservations;
DROP FUNCTION IF EXISTS seat_holds_add();
DROP FUNCTION IF EXISTS seat_holds_change();
DROP FUNCTION IF EXISTS seat_holds_remove();
"""

# SQLite (the embedded default): row triggers, one stripe.
_SQLITE_TRIGGERS = [
    """CREATE TRIGGER seat_holds_on_insert AFTER INSERT ON seat_reservations WHEN NEW.state = 'held'
    BEGIN
        INSERT INTO seat_holds (customer_id, sku_part_number, stripe, held)
        VALUES (NEW.customer_id, NEW.sku_part_number, 0, 1)
        ON CONFLICT (customer_id, sku_part_number, stripe) DO UPDATE SET held = held + 1;
    END""",
    """CREATE TRIGGER seat_holds_on_update AFTER UPDATE ON seat_reservations
    WHEN (OLD.state = 'held') <> (NEW.state = 'held') OR OLD.customer_id <> NEW.customer_id
      OR OLD.sku_part_number <> NEW.sku_part_number
    BEGIN
        UPDATE seat_holds SET held = held - 1
         WHERE OLD.state = 'held' AND customer_id = OLD.customer_id
           AND sku_part_number = OLD.sku_part_number AND stripe = 0;
        INSERT INTO seat_holds (customer_id, sku_part_number, stripe, held)
        SELECT NEW.customer_id, NEW.sku_part_number, 0, 1 WHERE NEW.state = 'held'
        ON CONFLICT (customer_id, sku_part_number, stripe) DO UPDATE SET held = held + 1;
    END""",
    """CREATE TRIGGER seat_holds_on_delete AFTER DELETE ON seat_reservations WHEN OLD.state = 'held'
    BEGIN
        UPDATE seat_holds SET held = held - 1
         WHERE customer_id = OLD.customer_id AND sku_part_number = OLD.sku_part_number AND stripe = 0;
    END""",
]


def upgrade() -> None:
    op.create_table(
        "seat_holds",
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("sku_part_number", sa.String(length=120), nullable=False),
        sa.Column("stripe", sa.SmallInteger(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_seat_holds_customer_id_customers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id", "sku_part_number", "stripe", name=op.f("pk_seat_holds")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""INSERT INTO seat_holds (customer_id, sku_part_number, stripe, held)
                       SELECT customer_id, sku_part_number, hashtext(id) & {STRIPES - 1}, count(*)
                         FROM seat_reservations WHERE state = 'held' GROUP BY 1, 2, 3""")
        op.execute(_PG_FUNCTIONS)
    else:
        op.execute("""INSERT INTO seat_holds (customer_id, sku_part_number, stripe, held)
                      SELECT customer_id, sku_part_number, 0, count(*)
                        FROM seat_reservations WHERE state = 'held' GROUP BY 1, 2""")
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_DROP)
    else:
        for name in ("seat_holds_on_insert", "seat_holds_on_update", "seat_holds_on_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("seat_holds")
