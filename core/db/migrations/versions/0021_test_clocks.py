"""Test clocks: a customer created on one lives on its `frozen_time` instead of the wall clock's.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_ID = UUID(as_uuid=False)


def upgrade() -> None:
    op.create_table(
        "test_clocks",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("organization_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("frozen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="ready"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_test_clocks_organization", "test_clocks", ["organization_id"])
    op.add_column("customers", sa.Column("test_clock_id", _ID, sa.ForeignKey("test_clocks.id")))
    op.create_index("ix_customers_test_clock", "customers", ["test_clock_id"],
                    postgresql_where=sa.text("test_clock_id IS NOT NULL"))
    # a customer's subscriptions (its clock's, its history, its deletion) without reading them all
    op.create_index("ix_subscriptions_customer", "subscriptions", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_customer", "subscriptions")
    op.drop_index("ix_customers_test_clock", "customers")
    op.drop_column("customers", "test_clock_id")
    op.drop_table("test_clocks")
