"""PostgreSQL tables of billing (SQLAlchemy Core), on the shared metadata. Created by migration 0004."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID

from rater.tables import metadata


def _now(name: str) -> Column:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


# One invoice per customer per billing moment (all of a customer's calendar subscriptions share
# their billing day, so they share the invoice). `due_at` is the billing moment; `grace_until`
# the end of the customer's grace period, when a draft is finalized.
invoices = Table(
    "invoices",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=False), ForeignKey("customers.id"), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("issuing_date", Date, nullable=False),
    Column("grace_until", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fees_amount_cents", BigInteger, nullable=False),
    Column("total_amount_cents", BigInteger, nullable=False),
    Column("sequential_id", Integer),
    Column("number", String(64)),
    Column("finalized_at", DateTime(timezone=True)),
    _now("created_at"),
    _now("updated_at"),
    UniqueConstraint("customer_id", "sequential_id", name="uq_invoices_customer_sequential_id"),
    Index("ix_invoices_org_issuing_date", "organization_id", "issuing_date"),
    Index("ix_invoices_drafts", "grace_until", postgresql_where=text("status = 'draft'")),
)

# What one invoice bills for one subscription. The unique key (subscription, billing_key) is what
# makes billing idempotent: a billing moment of a subscription is invoiced at most once, however
# many billers run, however often.
invoice_subscriptions = Table(
    "invoice_subscriptions",
    metadata,
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("subscription_id", UUID(as_uuid=False), ForeignKey("subscriptions.id"), nullable=False),
    Column("billing_key", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("invoicing_reason", String(32), nullable=False),
    Column("fee_amount_cents", BigInteger, nullable=False),
    Column("fee_from", DateTime(timezone=True)),
    Column("fee_to", DateTime(timezone=True)),
    Column("charges_from", DateTime(timezone=True)),
    Column("charges_to", DateTime(timezone=True)),
    Column("closes_period_key", String(32)),
    Column("period_start", DateTime(timezone=True)),
    Column("period_end", DateTime(timezone=True)),
    UniqueConstraint("subscription_id", "billing_key", name="uq_invoice_subscriptions_sub_billing_key"),
    Index("ix_invoice_subscriptions_invoice", "invoice_id"),
)

fees = Table(
    "fees",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("subscription_id", UUID(as_uuid=False), ForeignKey("subscriptions.id"), nullable=False),
    Column("fee_type", String(16), nullable=False),
    Column("charge_id", UUID(as_uuid=False)),
    Column("billable_metric_id", UUID(as_uuid=False)),
    Column("item_code", String(255), nullable=False),
    Column("item_name", String(255), nullable=False),
    Column("invoice_display_name", String(255)),
    Column("units", String(64), nullable=False),
    Column("events_count", BigInteger),
    Column("amount_cents", BigInteger, nullable=False),
    Column("precise_amount_cents", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("from_datetime", DateTime(timezone=True)),
    Column("to_datetime", DateTime(timezone=True)),
    Column("position", Integer, nullable=False),
    _now("created_at"),
    Index("ix_fees_invoice", "invoice_id"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("webhook_url", Text, nullable=False),
    Column("name", String(255)),
    Column("signature_algo", String(8), nullable=False),
    Column("hmac_key", String(64), nullable=False),
    _now("created_at"),
    UniqueConstraint("organization_id", "webhook_url", name="uq_webhook_endpoints_org_url"),
)

# The outbox: a row per (endpoint, webhook type, invoice), written in the transaction that creates
# or finalizes the invoice, so no webhook is lost; delivered and retried with backoff by the biller.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), nullable=False),
    Column("endpoint_id", UUID(as_uuid=False), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
           nullable=False),
    Column("webhook_type", String(64), nullable=False),
    Column("object_id", UUID(as_uuid=False), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    _now("created_at"),
    UniqueConstraint("endpoint_id", "webhook_type", "object_id", name="uq_webhook_deliveries_once"),
    Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
)
