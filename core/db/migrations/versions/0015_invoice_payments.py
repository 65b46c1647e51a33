"""Invoices are paid, voided and overdue: `payment_overdue` set once (by the biller, with its webhook),
`voided_at`, up to 5 key/value metadata items per invoice, and every change of an invoice's payment status
(the object of its `invoice.payment_status_updated` webhook: one per change, where the outbox sends one
webhook per object and type), and what a queued webhook is about when not its object (the payment change's
invoice: the webhooks about one thing are delivered in order).

Invoices already overdue when this runs are marked without a webhook: their due date passed before
meterline knew overdue invoices.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("payment_overdue", sa.Boolean, nullable=False, server_default="false"))
    op.add_column("invoices", sa.Column("voided_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE invoices SET payment_overdue = true WHERE status = 'finalized' "
               "AND payment_status <> 'succeeded' AND payment_due_date < current_date")
    op.create_index("ix_invoices_payable", "invoices", ["payment_due_date"],
                    postgresql_where=sa.text("status = 'finalized' AND payment_status <> 'succeeded' "
                                             "AND NOT payment_overdue"))
    op.create_table(
        "invoice_metadata",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("invoice_id", UUID(as_uuid=False), sa.ForeignKey("invoices.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("key", sa.String(20), nullable=False),
        sa.Column("value", sa.String(140), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("invoice_id", "key", name="uq_invoice_metadata_key"),
    )
    op.create_table(
        "invoice_payment_updates",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("invoice_id", UUID(as_uuid=False), sa.ForeignKey("invoices.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("previous_payment_status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_invoice_payment_updates_invoice", "invoice_payment_updates", ["invoice_id"])
    op.add_column("webhook_deliveries", sa.Column("about_id", UUID(as_uuid=False)))


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "about_id")
    op.drop_table("invoice_payment_updates")
    op.drop_table("invoice_metadata")
    op.drop_index("ix_invoices_payable", table_name="invoices")
    op.drop_column("invoices", "voided_at")
    op.drop_column("invoices", "payment_overdue")
