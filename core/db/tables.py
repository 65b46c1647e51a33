"""PostgreSQL tables (SQLAlchemy Core): the catalog, the event archive and billing.

The one home of the database schema; every service reads and writes through these definitions.
Schema changes go through the Alembic migrations in core/db/migrations.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()


def _now(name: str) -> Column:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


def _created_at() -> Column:
    return _now("created_at")


ORGANIZATION_DETAILS = ("legal_name", "email", "address_line1", "address_line2", "city", "zipcode", "state",
                        "country", "tax_identification_number")

organizations = Table(
    "organizations",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    _created_at(),
    # days from an invoice's issuing date to its due date for a customer without its own net_payment_term
    Column("net_payment_term", Integer, nullable=False, server_default="0"),
    # what its invoice documents show of it (`meterline org details`), all optional
    *(Column(name, String(255)) for name in ORGANIZATION_DETAILS),
    Column("invoice_footer", Text),
    # signs the links to its invoice documents (HMAC-SHA256), a random one per organization
    Column("document_key", String(64), nullable=False,
           server_default=text("md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text)")),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("key_sha256", String(64), nullable=False, unique=True),
    Column("expires_at", DateTime(timezone=True)),
    _created_at(),
)

billable_metrics = Table(
    "billable_metrics",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("code", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("aggregation_type", String(32), nullable=False),
    Column("field_name", String(255)),
    Column("recurring", Boolean, nullable=False, server_default="false"),
    Column("weighted_interval", String(32)),
    Column("rounding_function", String(16)),
    Column("rounding_precision", Integer),
    Column("expression", Text),
    _created_at(),
    Column("deleted_at", DateTime(timezone=True)),
    # codes are unique among live rows only: a deleted metric's code can be reused (as in Lago)
    Index("uq_billable_metrics_org_code", "organization_id", "code", unique=True,
          postgresql_where=text("deleted_at IS NULL")),
)

plans = Table(
    "plans",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("code", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("invoice_display_name", String(255)),
    Column("description", Text),
    Column("interval", String(16), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("amount_currency", String(3), nullable=False),
    Column("pay_in_advance", Boolean, nullable=False, server_default="false"),
    Column("bill_charges_monthly", Boolean),
    Column("trial_period", Integer, nullable=False, server_default="0"),
    _created_at(),
    Column("deleted_at", DateTime(timezone=True)),
    Index("uq_plans_org_code", "organization_id", "code", unique=True,
          postgresql_where=text("deleted_at IS NULL")),
)

charges = Table(
    "charges",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("plan_id", UUID(as_uuid=False), ForeignKey("plans.id", ondelete="CASCADE"), nullable=False),
    Column("billable_metric_id", UUID(as_uuid=False), ForeignKey("billable_metrics.id"), nullable=False),
    Column("charge_model", String(32), nullable=False),
    Column("invoice_display_name", String(255)),
    Column("pay_in_advance", Boolean, nullable=False, server_default="false"),
    Column("invoiceable", Boolean, nullable=False, server_default="true"),
    Column("min_amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("properties", JSONB, nullable=False),
    Column("position", Integer, nullable=False, server_default="0"),
    _created_at(),
)

# A tax (`/taxes`): a fee carries the taxes of its charge, else its plan, else its customer, else its
# organization's defaults (`applied_to_organization`): core.domain.taxes. Deleting one sets `deleted_at`
# and detaches it; invoices keep their snapshot of it (fee_applied_taxes, invoice_applied_taxes).
taxes = Table(
    "taxes",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("code", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("rate", Numeric(9, 5), nullable=False),  # percent
    Column("description", Text),
    Column("applied_to_organization", Boolean, nullable=False, server_default="false"),
    _now("created_at"),
    _now("updated_at"),
    Column("deleted_at", DateTime(timezone=True)),
    Index("uq_taxes_org_code", "organization_id", "code", unique=True, postgresql_where=text("deleted_at IS NULL")),
)


def _tax_links(owner: str, table: str) -> Table:
    """The taxes of a customer, plan or charge (its `tax_codes`)."""
    return Table(
        f"{owner}_taxes",
        metadata,
        Column(f"{owner}_id", UUID(as_uuid=False), ForeignKey(f"{table}.id", ondelete="CASCADE"), primary_key=True),
        Column("tax_id", UUID(as_uuid=False), ForeignKey("taxes.id"), primary_key=True),
        Index(f"ix_{owner}_taxes_tax", "tax_id"),
    )


plan_taxes = _tax_links("plan", "plans")
charge_taxes = _tax_links("charge", "charges")


# A test clock: the customers created on it live on its frozen_time instead of the wall clock's (core.db.clocks)
test_clocks = Table(
    "test_clocks",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("frozen_time", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, server_default="ready"),  # or advancing
    _created_at(),
    _now("updated_at"),
    Column("deleted_at", DateTime(timezone=True)),
    Index("ix_test_clocks_organization", "organization_id"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("name", String(255)),
    Column("email", String(255)),
    Column("currency", String(3)),
    Column("timezone", String(64)),
    Column("invoice_grace_period", Integer),
    Column("net_payment_term", Integer),  # days from an invoice's issuing date to its due date (null: 0)
    Column("attributes", JSONB, nullable=False, server_default="{}"),
    Column("sequential_id", BigInteger, nullable=False),  # per organization from 1, deleted ones counted
    Column("slug", String(64), nullable=False),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
    # set when it is created, or before its first subscription: it then lives on that clock for good
    Column("test_clock_id", UUID(as_uuid=False), ForeignKey("test_clocks.id")),
    Index("ix_customers_test_clock", "test_clock_id", postgresql_where=text("test_clock_id IS NOT NULL")),
    Index("uq_customers_org_external_id", "organization_id", "external_id", unique=True,
          postgresql_where=text("deleted_at IS NULL")),
    UniqueConstraint("organization_id", "sequential_id", name="uq_customers_org_sequential_id"),
)

customer_taxes = _tax_links("customer", "customers")

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=False), ForeignKey("customers.id"), nullable=False),
    Column("plan_id", UUID(as_uuid=False), ForeignKey("plans.id"), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("name", String(255)),
    Column("status", String(16), nullable=False),
    Column("billing_time", String(16), nullable=False),
    Column("subscription_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("terminated_at", DateTime(timezone=True)),
    Column("ending_at", DateTime(timezone=True)),
    Column("canceled_at", DateTime(timezone=True)),
    Column("changes_at", DateTime(timezone=True)),  # a scheduled downgrade ends it then (its successor starts)
    Column("trial_ended_at", DateTime(timezone=True)),  # when subscription.trial_ended was announced
    # the two sides of an upgrade: their moments share one invoice (`upgrading`)
    Column("started_by_upgrade", Boolean, nullable=False, server_default="false"),
    Column("ended_by_upgrade", Boolean, nullable=False, server_default="false"),
    # the subscription a plan change replaced (previous_plan_code); the start of the first subscription
    # of that chain (a trial and anniversary dates count from it, not from the change; null: its own start)
    Column("previous_subscription_id", UUID(as_uuid=False)),
    Column("anchor_at", DateTime(timezone=True)),
    # its external_id was used before: its first period starts at its start instant, not at the start of
    # that day, so two subscriptions of one external_id never share a period (or its usage state)
    Column("follows_previous", Boolean, nullable=False, server_default="false"),
    Column("on_termination_invoice", String(16), nullable=False, server_default="generate"),
    Column("on_termination_credit_note", String(16), nullable=False, server_default="credit"),
    Column("progressive_billing_disabled", Boolean, nullable=False, server_default="false"),
    _created_at(),
    # an external_id names one active subscription, and one pending (a scheduled downgrade waits next to
    # the active one); a terminated or canceled one's external_id can be used again
    Index("uq_subscriptions_org_external_id_active", "organization_id", "external_id", unique=True,
          postgresql_where=text("status = 'active'")),
    Index("uq_subscriptions_org_external_id_pending", "organization_id", "external_id", unique=True,
          postgresql_where=text("status = 'pending'")),
    Index("ix_subscriptions_org_external_id", "organization_id", "external_id"),
    Index("ix_subscriptions_customer", "customer_id"),
    Index("ix_subscriptions_previous", "previous_subscription_id",
          postgresql_where=text("previous_subscription_id IS NOT NULL")),
    Index("ix_subscriptions_pending", "subscription_at", postgresql_where=text("status = 'pending'")),
    Index("ix_subscriptions_ending", "ending_at",
          postgresql_where=text("status = 'active' AND ending_at IS NOT NULL")),
)

# The durable ledger of applied events: one row per (organization, subscription, transaction_id),
# first copy wins. Invoices are computed from this table, never from Redis.
# `events` is partitioned by month of `timestamp` (aggregator/archive.py creates the partitions it
# needs), so old months can be detached or dropped whole. PostgreSQL only enforces a unique key on
# a partitioned table when it includes the partition key, and the dedup key must not include the
# timestamp (the first copy wins whatever the timestamp of a later one): `event_keys`, a plain
# table, holds that key, and an event row is inserted only when its key was new (one statement).
events = Table(
    "events",
    metadata,
    Column("organization_id", UUID(as_uuid=False), nullable=False),
    Column("external_subscription_id", String(255), nullable=False),
    Column("transaction_id", String(255), nullable=False),
    Column("lago_id", UUID(as_uuid=False), nullable=False),
    Column("code", String(255), nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("properties", JSONB, nullable=False),
    Column("precise_total_amount_cents", String(64)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    _created_at(),
    Index("ix_events_org_sub_timestamp", "organization_id", "external_subscription_id", "timestamp"),
    postgresql_partition_by="RANGE (timestamp)",
)

event_keys = Table(
    "event_keys",
    metadata,
    Column("organization_id", UUID(as_uuid=False), nullable=False),
    Column("external_subscription_id", String(255), nullable=False),
    Column("transaction_id", String(255), nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),  # finds the row's partition
    # the key in this order: its (organization_id, transaction_id) prefix also serves
    # GET /events/{transaction_id}, so each archived event updates one B-tree here, not two
    PrimaryKeyConstraint("organization_id", "transaction_id", "external_subscription_id", name="event_keys_pkey"),
)

# Billing periods that are closed for good (their invoice is finalized). The aggregator rejects
# late events for them as `period_closed`; the biller inserts a row when it finalizes an invoice.
closed_periods = Table(
    "closed_periods",
    metadata,
    Column("subscription_id", UUID(as_uuid=False), ForeignKey("subscriptions.id"), primary_key=True),
    Column("period_key", String(32), primary_key=True),
    Column("closed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Billing (migration 0004).


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
    Column("net_payment_term", Integer, nullable=False, server_default="0"),
    Column("payment_due_date", Date, nullable=False),  # issuing_date + net_payment_term
    Column("status", String(16), nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fees_amount_cents", BigInteger, nullable=False),
    Column("credit_notes_amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("invoice_type", String(32), nullable=False, server_default="subscription"),  # or progressive_billing
    # what the period's progressive billing invoices billed before this one (deducted from its fees)
    Column("progressive_billing_credit_amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("total_amount_cents", BigInteger, nullable=False),  # fees - progressive credit + taxes - credit notes
    Column("sequential_id", Integer),
    Column("number", String(64)),
    Column("finalized_at", DateTime(timezone=True)),
    # set once by the biller when the due date passed unpaid (webhook invoice.payment_overdue); cleared by
    # a payment that succeeded or a void (rater.billing.payments)
    Column("payment_overdue", Boolean, nullable=False, server_default="false"),
    Column("voided_at", DateTime(timezone=True)),
    # what its customer's coupons took from it, before taxes (coupon_credits)
    Column("coupons_amount_cents", BigInteger, nullable=False, server_default="0"),
    # on its fees less the progressive billing credit and coupons (invoice_applied_taxes); the total includes them
    Column("taxes_amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("taxes_rate", Numeric(12, 5), nullable=False, server_default="0"),
    _now("created_at"),
    _now("updated_at"),
    UniqueConstraint("customer_id", "sequential_id", name="uq_invoices_customer_sequential_id"),
    Index("ix_invoices_org_issuing_date", "organization_id", "issuing_date"),
    Index("ix_invoices_drafts", "grace_until", postgresql_where=text("status = 'draft'")),
    Index("ix_invoices_payable", "payment_due_date",
          postgresql_where=text("status = 'finalized' AND payment_status <> 'succeeded' AND NOT payment_overdue")),
)

# An invoice's key/value metadata (`PUT /invoices/{lago_id}`): at most 5, a key unique per invoice.
invoice_metadata = Table(
    "invoice_metadata",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(20), nullable=False),
    Column("value", String(140), nullable=False),
    _now("created_at"),
    _now("updated_at"),
    UniqueConstraint("invoice_id", "key", name="uq_invoice_metadata_key"),
)

# Every change of an invoice's payment status, for the record, and the object of its
# `invoice.payment_status_updated` webhook (the outbox sends one webhook per object and type).
invoice_payment_updates = Table(
    "invoice_payment_updates",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("previous_payment_status", String(16), nullable=False),
    _now("created_at"),
    Index("ix_invoice_payment_updates_invoice", "invoice_id"),
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
    # a true-up fee (a charge's minimum minus its amount) points at the charge fee it trues up
    Column("true_up_parent_fee_id", UUID(as_uuid=False)),
    # its taxes (fee_applied_taxes), on its amount less its share of what the invoice deducts before taxes
    # (`precise_coupons_amount_cents`, Lago's name: the period's progressive billing credit and coupons)
    Column("taxes_amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("taxes_precise_amount_cents", String(64), nullable=False, server_default="0"),
    Column("taxes_rate", Numeric(12, 5), nullable=False, server_default="0"),
    Column("precise_coupons_amount_cents", String(64), nullable=False, server_default="0"),
    # how the charge priced its units when billed (Lago's FeeAmountDetails: a graduated charge's tiers)
    Column("amount_details", JSONB, nullable=False, server_default="{}"),
    _now("created_at"),
    Index("ix_fees_invoice", "invoice_id"),
)

# An invoice's PDF: a final invoice's is written once and never changes; a draft's is replaced each time it is
# generated again (rater.billing.pdf, rater.api.invoices)
invoice_documents = Table(
    "invoice_documents",
    metadata,
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True),
    Column("content", LargeBinary, nullable=False),
    Column("draft", Boolean, nullable=False),
    _now("created_at"),
)

def _applied_taxes(owner: str, table: str) -> Table:
    """The taxes a fee or an invoice carries, as the taxes were when it was billed."""
    return Table(
        f"{owner}_applied_taxes",
        metadata,
        Column("id", UUID(as_uuid=False), primary_key=True),
        Column(f"{owner}_id", UUID(as_uuid=False), ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False),
        Column("tax_id", UUID(as_uuid=False), ForeignKey("taxes.id"), nullable=False),
        Column("tax_code", String(255), nullable=False),
        Column("tax_name", String(255), nullable=False),
        Column("tax_rate", Numeric(9, 5), nullable=False),
        Column("tax_description", Text),
        Column("amount_cents", BigInteger, nullable=False),
        Column("precise_amount_cents", String(64), nullable=False),
        Column("fees_amount_cents", BigInteger, nullable=False, server_default="0"),  # an invoice's: taxed
        Column("position", Integer, nullable=False),
        _now("created_at"),
        Index(f"ix_{owner}_applied_taxes_{owner}", f"{owner}_id"),
    )


fee_applied_taxes = _applied_taxes("fee", "fees")
invoice_applied_taxes = _applied_taxes("invoice", "invoices")

# A credit note: the unused part of a subscription fee paid in advance, when a plan change or a
# termination ends its period early (one per subscription and billing moment: `billing_key` is the
# moment that ended it, so billing it twice cannot credit twice). Its balance is taken by the
# customer's next invoices, oldest note first (credit_note_applications), under the customer lock.
credit_notes = Table(
    "credit_notes",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=False), ForeignKey("customers.id"), nullable=False),
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id"), nullable=False),  # the invoice credited
    Column("fee_id", UUID(as_uuid=False), nullable=False),  # its subscription fee credited
    Column("subscription_id", UUID(as_uuid=False), ForeignKey("subscriptions.id"), nullable=False),
    Column("billing_key", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("credit_amount_cents", BigInteger, nullable=False),  # the unused amount and its taxes
    Column("taxes_amount_cents", BigInteger, nullable=False, server_default="0"),  # the credited fee's taxes on it
    Column("taxes_rate", Numeric(12, 5), nullable=False, server_default="0"),
    Column("balance_amount_cents", BigInteger, nullable=False),
    Column("credit_status", String(16), nullable=False),  # available, consumed, voided
    Column("sequential_id", Integer, nullable=False),  # per credited invoice
    Column("number", String(64), nullable=False),
    Column("issuing_date", Date, nullable=False),
    Column("voided_at", DateTime(timezone=True)),
    _now("created_at"),
    _now("updated_at"),
    UniqueConstraint("subscription_id", "billing_key", name="uq_credit_notes_sub_billing_key"),
    UniqueConstraint("invoice_id", "sequential_id", name="uq_credit_notes_invoice_sequential_id"),
    Index("ix_credit_notes_customer_available", "customer_id", "created_at",
          postgresql_where=text("balance_amount_cents > 0 AND credit_status = 'available'")),
)

credit_note_applications = Table(
    "credit_note_applications",
    metadata,
    Column("credit_note_id", UUID(as_uuid=False), ForeignKey("credit_notes.id"), nullable=False),
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    _now("created_at"),
    PrimaryKeyConstraint("credit_note_id", "invoice_id"),
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
    # what the webhook is about when not its object (a payment status change's: its invoice): the webhooks
    # about one thing are delivered in the order they were queued (rater.billing.outbox)
    Column("about_id", UUID(as_uuid=False)),
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

# A subscription external_id's usage alerts. `thresholds`: [{code, value, recurring}], values as decimal
# text in ascending order, at most one recurring. Codes are unique among live alerts of an external_id.
alerts = Table(
    "alerts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("subscription_external_id", String(255), nullable=False),
    Column("alert_type", String(64), nullable=False),
    Column("code", String(255), nullable=False),
    Column("name", String(255)),
    Column("billable_metric_id", UUID(as_uuid=False), ForeignKey("billable_metrics.id")),
    Column("thresholds", JSONB, nullable=False),
    _created_at(),
    _now("updated_at"),
    Column("deleted_at", DateTime(timezone=True)),
    Index("uq_alerts_org_subscription_code", "organization_id", "subscription_external_id", "code", unique=True,
          postgresql_where=text("deleted_at IS NULL")),
)

# The durable record of what thresholds fired: per subject (an alert, or a subscription for its progressive
# billing thresholds) and billing period ("lifetime" for lifetime alerts), the highest level fired and the
# value seen by the evaluation that fired it. Written, under its row lock, in the transaction that fires.
threshold_states = Table(
    "threshold_states",
    metadata,
    Column("subject_id", UUID(as_uuid=False), nullable=False),
    Column("period_key", String(32), nullable=False),
    Column("fired_level", Numeric),
    Column("last_value", Numeric, nullable=False),
    _now("updated_at"),
    PrimaryKeyConstraint("subject_id", "period_key", name="pk_threshold_states"),
)

# What one evaluation fired: the object of an `alert.triggered` webhook.
triggered_alerts = Table(
    "triggered_alerts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), nullable=False),
    Column("alert_id", UUID(as_uuid=False), ForeignKey("alerts.id"), nullable=False),
    Column("subscription_id", UUID(as_uuid=False), ForeignKey("subscriptions.id"), nullable=False),
    Column("period_key", String(32), nullable=False),
    Column("current_value", Numeric, nullable=False),
    Column("previous_value", Numeric, nullable=False),
    Column("crossed_thresholds", JSONB, nullable=False),
    _now("triggered_at"),
    Index("ix_triggered_alerts_alert", "alert_id", "triggered_at"),
)

# Progressive billing thresholds: a plan's, or one subscription's own (which replace its plan's).
usage_thresholds = Table(
    "usage_thresholds",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("plan_id", UUID(as_uuid=False), ForeignKey("plans.id", ondelete="CASCADE")),
    Column("subscription_id", UUID(as_uuid=False), ForeignKey("subscriptions.id", ondelete="CASCADE")),
    Column("threshold_display_name", String(255)),
    Column("amount_cents", BigInteger, nullable=False),
    Column("recurring", Boolean, nullable=False, server_default="false"),
    _created_at(),
    _now("updated_at"),
    # removed (a progressive crossing may name it: its invoice and webhook show it): kept, skipped by readers
    Column("deleted_at", DateTime(timezone=True)),
    CheckConstraint("(plan_id IS NULL) <> (subscription_id IS NULL)", name="ck_usage_thresholds_owner"),
    Index("ix_usage_thresholds_plan", "plan_id"),
    Index("ix_usage_thresholds_subscription", "subscription_id"),
)

# A progressive billing threshold level a subscription's period reached, with the usage seen then
# (`charges`: per charge id, {units, amount_cents, precise_amount_cents, events_count}); `pending` until
# the biller invoices it (`invoiced`, `invoice_id`) or finds the period closed by then (`superseded`).
progressive_crossings = Table(
    "progressive_crossings",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), nullable=False),
    Column("subscription_id", UUID(as_uuid=False), ForeignKey("subscriptions.id"), nullable=False),
    Column("period_key", String(32), nullable=False),
    Column("level_cents", BigInteger, nullable=False),
    Column("usage_threshold_id", UUID(as_uuid=False), nullable=False),
    Column("usage_amount_cents", BigInteger, nullable=False),
    Column("charges", JSONB, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id")),
    _now("reached_at"),
    UniqueConstraint("subscription_id", "period_key", "level_cents", name="uq_progressive_crossings_level"),
    Index("ix_progressive_crossings_pending", "reached_at", postgresql_where=text("status = 'pending'")),
)


# A coupon (`/coupons`): `fixed_amount` (amount_cents in amount_currency) or `percentage`, used `once`,
# `recurring` (frequency_duration invoices) or `forever`; limited to plans or to metrics (coupon_targets).
# Deleting one sets `deleted_at` and terminates its applied coupons.
coupons = Table(
    "coupons",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("code", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("coupon_type", String(16), nullable=False),
    Column("amount_cents", BigInteger),
    Column("amount_currency", String(3)),
    Column("percentage_rate", Numeric(10, 5)),
    Column("frequency", String(16), nullable=False),
    Column("frequency_duration", Integer),
    Column("reusable", Boolean, nullable=False, server_default="true"),
    Column("expiration", String(16), nullable=False),
    Column("expiration_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("terminated_at", DateTime(timezone=True)),
    _now("created_at"),
    _now("updated_at"),
    Column("deleted_at", DateTime(timezone=True)),
    Index("uq_coupons_org_code", "organization_id", "code", unique=True, postgresql_where=text("deleted_at IS NULL")),
)

# The plans (or the metrics) a limited coupon applies to.
coupon_targets = Table(
    "coupon_targets",
    metadata,
    Column("coupon_id", UUID(as_uuid=False), ForeignKey("coupons.id", ondelete="CASCADE"), nullable=False),
    Column("plan_id", UUID(as_uuid=False), ForeignKey("plans.id")),
    Column("billable_metric_id", UUID(as_uuid=False), ForeignKey("billable_metrics.id")),
    Index("ix_coupon_targets_coupon", "coupon_id"),
)

# A coupon applied to a customer (`/applied_coupons`), with its own amounts and frequency (the coupon's
# unless given); what it has left is what its credits on invoices not voided have not taken.
applied_coupons = Table(
    "applied_coupons",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("organization_id", UUID(as_uuid=False), ForeignKey("organizations.id"), nullable=False),
    Column("coupon_id", UUID(as_uuid=False), ForeignKey("coupons.id"), nullable=False),
    Column("customer_id", UUID(as_uuid=False), ForeignKey("customers.id"), nullable=False),
    Column("amount_cents", BigInteger),
    Column("amount_currency", String(3)),
    Column("percentage_rate", Numeric(10, 5)),
    Column("frequency", String(16), nullable=False),
    Column("frequency_duration", Integer),
    Column("frequency_duration_remaining", Integer),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("terminated_at", DateTime(timezone=True)),
    _now("created_at"),
    _now("updated_at"),
    Index("ix_applied_coupons_customer", "customer_id"),
)

# What an applied coupon took from an invoice (before taxes): once per invoice and applied coupon.
coupon_credits = Table(
    "coupon_credits",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("invoice_id", UUID(as_uuid=False), ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("applied_coupon_id", UUID(as_uuid=False), ForeignKey("applied_coupons.id"), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("position", Integer, nullable=False),
    _now("created_at"),
    UniqueConstraint("invoice_id", "applied_coupon_id", name="uq_coupon_credits_invoice_coupon"),
    Index("ix_coupon_credits_applied_coupon", "applied_coupon_id"),
)
