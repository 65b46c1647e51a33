"""Plan changes, reusable external ids, termination options and credit notes

- subscriptions: an external_id is unique among active subscriptions and among pending ones (a
  scheduled downgrade is pending next to the active one), no longer for ever: a terminated one can be
  used again. `previous_subscription_id` is the subscription a plan change replaced; `anchor_at` the
  start of the first subscription of that chain (trials and anniversary dates count from it);
  `follows_previous` marks a subscription whose external_id was used before: its first period starts
  at its own start instant, so two subscriptions never share a period. `on_termination_invoice`,
  `on_termination_credit_note`, `canceled_at`; `changes_at`: when a scheduled downgrade ends it (its
  pending successor starts then); `trial_ended_at`: when subscription.trial_ended was announced;
  `started_by_upgrade` / `ended_by_upgrade`: the two sides of an upgrade (one invoice, `upgrading`).
- credit_notes (one per credited fee paid in advance) and credit_note_applications (what each
  invoice took from each note, exactly once: the invoices' customer lock is held when it is written).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("uq_subscriptions_org_external_id", "subscriptions")
    op.create_index("uq_subscriptions_org_external_id_active", "subscriptions", ["organization_id", "external_id"],
                    unique=True, postgresql_where=sa.text("status = 'active'"))
    op.create_index("uq_subscriptions_org_external_id_pending", "subscriptions", ["organization_id", "external_id"],
                    unique=True, postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_subscriptions_org_external_id", "subscriptions", ["organization_id", "external_id"])
    op.add_column("subscriptions", sa.Column("previous_subscription_id", UUID(as_uuid=False)))
    op.add_column("subscriptions", sa.Column("anchor_at", sa.DateTime(timezone=True)))  # null: its own start
    op.add_column("subscriptions", sa.Column("follows_previous", sa.Boolean(), nullable=False,
                                             server_default="false"))
    op.add_column("subscriptions", sa.Column("on_termination_invoice", sa.String(16), nullable=False,
                                             server_default="generate"))
    op.add_column("subscriptions", sa.Column("on_termination_credit_note", sa.String(16), nullable=False,
                                             server_default="credit"))
    op.add_column("subscriptions", sa.Column("canceled_at", sa.DateTime(timezone=True)))
    op.add_column("subscriptions", sa.Column("changes_at", sa.DateTime(timezone=True)))
    op.add_column("subscriptions", sa.Column("trial_ended_at", sa.DateTime(timezone=True)))
    # trials that ended before this version are not announced now (Lago announced them when they ended)
    op.execute("""
        UPDATE subscriptions s SET trial_ended_at = s.started_at + p.trial_period * interval '1 day'
        FROM plans p WHERE p.id = s.plan_id AND p.trial_period > 0 AND s.started_at IS NOT NULL
          AND s.started_at + p.trial_period * interval '1 day' <= now()
    """)
    for name in ("started_by_upgrade", "ended_by_upgrade"):
        op.add_column("subscriptions", sa.Column(name, sa.Boolean(), nullable=False, server_default="false"))
    op.create_index("ix_subscriptions_previous", "subscriptions", ["previous_subscription_id"],
                    postgresql_where=sa.text("previous_subscription_id IS NOT NULL"))
    op.create_table(
        "credit_notes",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("organization_id", UUID(as_uuid=False), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=False), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("invoice_id", UUID(as_uuid=False), sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("fee_id", UUID(as_uuid=False), nullable=False),
        sa.Column("subscription_id", UUID(as_uuid=False), sa.ForeignKey("subscriptions.id"), nullable=False),
        sa.Column("billing_key", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("credit_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("balance_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_status", sa.String(16), nullable=False),
        sa.Column("sequential_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("issuing_date", sa.Date(), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("subscription_id", "billing_key", name="uq_credit_notes_sub_billing_key"),
        sa.UniqueConstraint("invoice_id", "sequential_id", name="uq_credit_notes_invoice_sequential_id"),
    )
    op.create_index("ix_credit_notes_customer_available", "credit_notes", ["customer_id", "created_at"],
                    postgresql_where=sa.text("balance_amount_cents > 0 AND credit_status = 'available'"))
    op.create_table(
        "credit_note_applications",
        sa.Column("credit_note_id", UUID(as_uuid=False), sa.ForeignKey("credit_notes.id"), nullable=False),
        sa.Column("invoice_id", UUID(as_uuid=False), sa.ForeignKey("invoices.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("credit_note_id", "invoice_id"),
    )
    op.add_column("invoices", sa.Column("credit_notes_amount_cents", sa.BigInteger(), nullable=False,
                                        server_default="0"))


def downgrade() -> None:
    op.drop_column("invoices", "credit_notes_amount_cents")
    op.drop_table("credit_note_applications")
    op.drop_table("credit_notes")
    op.drop_index("ix_subscriptions_previous", "subscriptions")
    for name in ("ended_by_upgrade", "started_by_upgrade", "trial_ended_at", "changes_at", "canceled_at",
                 "on_termination_credit_note", "on_termination_invoice", "follows_previous", "anchor_at",
                 "previous_subscription_id"):
        op.drop_column("subscriptions", name)
    op.drop_index("ix_subscriptions_org_external_id", "subscriptions")
    op.drop_index("uq_subscriptions_org_external_id_pending", "subscriptions")
    op.drop_index("uq_subscriptions_org_external_id_active", "subscriptions")
    op.create_unique_constraint("uq_subscriptions_org_external_id", "subscriptions", ["organization_id", "external_id"])
