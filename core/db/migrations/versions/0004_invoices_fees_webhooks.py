"""invoices, fees, webhook endpoints and the webhook outbox

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UUID = sa.UUID(as_uuid=False)


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("organization_id", UUID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("customer_id", UUID, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issuing_date", sa.Date(), nullable=False),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("fees_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("sequential_id", sa.Integer()),
        sa.Column("number", sa.String(64)),
        sa.Column("finalized_at", sa.DateTime(timezone=True)),
        _now("created_at"),
        _now("updated_at"),
        sa.UniqueConstraint("customer_id", "sequential_id", name="uq_invoices_customer_sequential_id"),
    )
    op.create_index("ix_invoices_org_issuing_date", "invoices", ["organization_id", "issuing_date"])
    op.create_index("ix_invoices_drafts", "invoices", ["grace_until"], postgresql_where=sa.text("status = 'draft'"))
    op.create_table(
        "invoice_subscriptions",
        sa.Column("invoice_id", UUID, sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subscription_id", UUID, sa.ForeignKey("subscriptions.id"), nullable=False),
        sa.Column("billing_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("invoicing_reason", sa.String(32), nullable=False),
        sa.Column("fee_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("fee_from", sa.DateTime(timezone=True)),
        sa.Column("fee_to", sa.DateTime(timezone=True)),
        sa.Column("charges_from", sa.DateTime(timezone=True)),
        sa.Column("charges_to", sa.DateTime(timezone=True)),
        sa.Column("closes_period_key", sa.String(32)),
        sa.Column("period_start", sa.DateTime(timezone=True)),
        sa.Column("period_end", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("subscription_id", "billing_key", name="uq_invoice_subscriptions_sub_billing_key"),
    )
    op.create_index("ix_invoice_subscriptions_invoice", "invoice_subscriptions", ["invoice_id"])
    op.create_table(
        "fees",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("invoice_id", UUID, sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subscription_id", UUID, sa.ForeignKey("subscriptions.id"), nullable=False),
        sa.Column("fee_type", sa.String(16), nullable=False),
        sa.Column("charge_id", UUID),
        sa.Column("billable_metric_id", UUID),
        sa.Column("item_code", sa.String(255), nullable=False),
        sa.Column("item_name", sa.String(255), nullable=False),
        sa.Column("invoice_display_name", sa.String(255)),
        sa.Column("units", sa.String(64), nullable=False),
        sa.Column("events_count", sa.BigInteger()),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("precise_amount_cents", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("from_datetime", sa.DateTime(timezone=True)),
        sa.Column("to_datetime", sa.DateTime(timezone=True)),
        sa.Column("position", sa.Integer(), nullable=False),
        _now("created_at"),
    )
    op.create_index("ix_fees_invoice", "fees", ["invoice_id"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("organization_id", UUID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("signature_algo", sa.String(8), nullable=False),
        sa.Column("hmac_key", sa.String(64), nullable=False),
        _now("created_at"),
        sa.UniqueConstraint("organization_id", "webhook_url", name="uq_webhook_endpoints_org_url"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("organization_id", UUID, nullable=False),
        sa.Column("endpoint_id", UUID, sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
        sa.Column("webhook_type", sa.String(64), nullable=False),
        sa.Column("object_id", UUID, nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        _now("created_at"),
        sa.UniqueConstraint("endpoint_id", "webhook_type", "object_id", name="uq_webhook_deliveries_once"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_table("fees")
    op.drop_table("invoice_subscriptions")
    op.drop_table("invoices")
