"""catalog soft delete: deleted_at on metrics, plans, customers; customers.updated_at

Deleted catalog objects stay in the table (terminated subscriptions and invoices still refer to
them), so the per-organization uniqueness of codes only holds among live rows: a code can be
reused after its object is deleted, as in Lago.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_UNIQUE = (
    ("billable_metrics", "uq_billable_metrics_org_code", "code"),
    ("plans", "uq_plans_org_code", "code"),
    ("customers", "uq_customers_org_external_id", "external_id"),
)


def upgrade() -> None:
    for table, name, column in _UNIQUE:
        op.add_column(table, sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        op.drop_constraint(name, table, type_="unique")
        op.create_index(name, table, ["organization_id", column], unique=True,
                        postgresql_where=sa.text("deleted_at IS NULL"))
    op.add_column("customers", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                                         server_default=sa.text("now()")))
    op.create_index("ix_subscriptions_pending", "subscriptions", ["subscription_at"],
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index("ix_subscriptions_pending", table_name="subscriptions")
    op.drop_column("customers", "updated_at")
    for table, name, column in _UNIQUE:
        op.drop_index(name, table_name=table)
        op.create_unique_constraint(name, table, ["organization_id", column])
        op.drop_column(table, "deleted_at")
