"""Coupons (`/coupons`), the coupons applied to customers (`/applied_coupons`), and what each took from an
invoice (`coupon_credits`, before taxes).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_ID = UUID(as_uuid=False)


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("organization_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("coupon_type", sa.String(16), nullable=False),
        sa.Column("amount_cents", sa.BigInteger),
        sa.Column("amount_currency", sa.String(3)),
        sa.Column("percentage_rate", sa.Numeric(10, 5)),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("frequency_duration", sa.Integer),
        sa.Column("reusable", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("expiration", sa.String(16), nullable=False),
        sa.Column("expiration_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("terminated_at", sa.DateTime(timezone=True)),
        _now("created_at"), _now("updated_at"),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("uq_coupons_org_code", "coupons", ["organization_id", "code"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "coupon_targets",
        sa.Column("coupon_id", _ID, sa.ForeignKey("coupons.id", ondelete="CASCADE"), nullable=False),
        sa.Column("plan_id", _ID, sa.ForeignKey("plans.id")),
        sa.Column("billable_metric_id", _ID, sa.ForeignKey("billable_metrics.id")),
    )
    op.create_index("ix_coupon_targets_coupon", "coupon_targets", ["coupon_id"])
    op.create_table(
        "applied_coupons",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("organization_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("coupon_id", _ID, sa.ForeignKey("coupons.id"), nullable=False),
        sa.Column("customer_id", _ID, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger),
        sa.Column("amount_currency", sa.String(3)),
        sa.Column("percentage_rate", sa.Numeric(10, 5)),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("frequency_duration", sa.Integer),
        sa.Column("frequency_duration_remaining", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("terminated_at", sa.DateTime(timezone=True)),
        _now("created_at"), _now("updated_at"),
    )
    op.create_index("ix_applied_coupons_customer", "applied_coupons", ["customer_id"])
    op.create_table(
        "coupon_credits",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("invoice_id", _ID, sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("applied_coupon_id", _ID, sa.ForeignKey("applied_coupons.id"), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        _now("created_at"),
        sa.UniqueConstraint("invoice_id", "applied_coupon_id", name="uq_coupon_credits_invoice_coupon"),
    )
    op.create_index("ix_coupon_credits_applied_coupon", "coupon_credits", ["applied_coupon_id"])
    op.add_column("invoices", sa.Column("coupons_amount_cents", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("invoices", "coupons_amount_cents")
    for table in ("coupon_credits", "applied_coupons", "coupon_targets", "coupons"):
        op.drop_table(table)
