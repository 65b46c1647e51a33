"""Usage alerts and progressive billing

- alerts: a subscription external_id's usage alerts (Lago's types), their thresholds as JSON
  (`[{code, value, recurring}]`, values as decimal text), soft-deleted so a code can be used again;
- threshold_states: per alert (or, for progressive billing, per subscription) and billing period, the
  highest threshold level fired so far and the value seen then, written in the transaction that fires:
  the durable record that makes a threshold fire once per period whatever is redelivered or rebuilt;
- triggered_alerts: what an evaluation fired (the `alert.triggered` webhook's object);
- usage_thresholds: progressive billing thresholds of a plan, or of one subscription (its overrides);
- progressive_crossings: a progressive threshold a subscription's period reached, with the usage
  seen then, until the biller invoices it (`invoice_id`) or finds its period closed (`status`);
- subscriptions.progressive_billing_disabled; invoices.invoice_type and
  invoices.progressive_billing_credit_amount_cents.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _uuid(name: str, *args: object, **kwargs: object) -> sa.Column:
    return sa.Column(name, UUID(as_uuid=False), *args, **kwargs)  # type: ignore[arg-type]


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "alerts",
        _uuid("id", primary_key=True),
        _uuid("organization_id", sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("subscription_external_id", sa.String(255), nullable=False),
        sa.Column("alert_type", sa.String(64), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        _uuid("billable_metric_id", sa.ForeignKey("billable_metrics.id")),
        sa.Column("thresholds", JSONB, nullable=False),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("uq_alerts_org_subscription_code", "alerts",
                    ["organization_id", "subscription_external_id", "code"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "threshold_states",
        _uuid("subject_id", nullable=False),
        sa.Column("period_key", sa.String(32), nullable=False),
        sa.Column("fired_level", sa.Numeric()),
        sa.Column("last_value", sa.Numeric(), nullable=False),
        _now("updated_at"),
        sa.PrimaryKeyConstraint("subject_id", "period_key", name="pk_threshold_states"),
    )
    op.create_table(
        "triggered_alerts",
        _uuid("id", primary_key=True),
        _uuid("organization_id", nullable=False),
        _uuid("alert_id", sa.ForeignKey("alerts.id"), nullable=False),
        _uuid("subscription_id", sa.ForeignKey("subscriptions.id"), nullable=False),
        sa.Column("period_key", sa.String(32), nullable=False),
        sa.Column("current_value", sa.Numeric(), nullable=False),
        sa.Column("previous_value", sa.Numeric(), nullable=False),
        sa.Column("crossed_thresholds", JSONB, nullable=False),
        _now("triggered_at"),
    )
    op.create_index("ix_triggered_alerts_alert", "triggered_alerts", ["alert_id", "triggered_at"])
    op.create_table(
        "usage_thresholds",
        _uuid("id", primary_key=True),
        _uuid("organization_id", sa.ForeignKey("organizations.id"), nullable=False),
        _uuid("plan_id", sa.ForeignKey("plans.id", ondelete="CASCADE")),
        _uuid("subscription_id", sa.ForeignKey("subscriptions.id", ondelete="CASCADE")),
        sa.Column("threshold_display_name", sa.String(255)),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("recurring", sa.Boolean(), nullable=False, server_default="false"),
        _now("created_at"),
        _now("updated_at"),
        sa.CheckConstraint("(plan_id IS NULL) <> (subscription_id IS NULL)", name="ck_usage_thresholds_owner"),
    )
    op.create_index("ix_usage_thresholds_plan", "usage_thresholds", ["plan_id"])
    op.create_index("ix_usage_thresholds_subscription", "usage_thresholds", ["subscription_id"])
    op.create_table(
        "progressive_crossings",
        _uuid("id", primary_key=True),
        _uuid("organization_id", nullable=False),
        _uuid("subscription_id", sa.ForeignKey("subscriptions.id"), nullable=False),
        sa.Column("period_key", sa.String(32), nullable=False),
        sa.Column("level_cents", sa.BigInteger(), nullable=False),
        _uuid("usage_threshold_id", nullable=False),
        sa.Column("usage_amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("charges", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        _uuid("invoice_id", sa.ForeignKey("invoices.id")),
        _now("reached_at"),
        sa.UniqueConstraint("subscription_id", "period_key", "level_cents", name="uq_progressive_crossings_level"),
    )
    op.create_index("ix_progressive_crossings_pending", "progressive_crossings", ["reached_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.add_column("subscriptions", sa.Column("progressive_billing_disabled", sa.Boolean(), nullable=False,
                                             server_default="false"))
    op.add_column("invoices", sa.Column("invoice_type", sa.String(32), nullable=False, server_default="subscription"))
    op.add_column("invoices", sa.Column("progressive_billing_credit_amount_cents", sa.BigInteger(), nullable=False,
                                        server_default="0"))


def downgrade() -> None:
    op.drop_column("invoices", "progressive_billing_credit_amount_cents")
    op.drop_column("invoices", "invoice_type")
    op.drop_column("subscriptions", "progressive_billing_disabled")
    op.drop_table("progressive_crossings")
    op.drop_table("usage_thresholds")
    op.drop_table("triggered_alerts")
    op.drop_table("threshold_states")
    op.drop_table("alerts")
