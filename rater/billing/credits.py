"""Credit notes: the unused part of a subscription fee paid in advance when a plan change or a
termination ends its period early (less the fee's share of the coupons its invoice took), with the fee's
taxes on it, and their balances taken by the customer's
next invoices.

Both happen in the transaction that writes the invoices, under the customers' locks (core.db.locks):
a note is created once per (subscription, billing moment) — a unique key, so a billing moment written
twice cannot credit twice — and a balance is taken by one invoice at a time, oldest note first, never
below zero (rater.billing.assemble.take_credits), exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.tables import (
    credit_note_applications,
    credit_notes,
    fee_applied_taxes,
    fees,
    invoice_subscriptions,
    invoices,
)
from core.db.webhooks import enqueue_webhooks
from core.domain.taxes import FeeTaxes, Tax, round_cents
from rater.billing.assemble import Credit
from rater.billing.grouping import Subscribed
from rater.billing.schedule import Due


async def _paid_fee(conn: AsyncConnection, subscription_id: str, at: Any) -> Any:
    """The finalized subscription fee in advance that covered the instant `at`, with its invoice."""
    return (await conn.execute(
        select(invoices.c.id.label("invoice_id"), invoices.c.number, invoices.c.currency, fees.c.id.label("fee_id"),
               fees.c.amount_cents, fees.c.precise_coupons_amount_cents)
        .select_from(invoice_subscriptions.join(invoices, invoices.c.id == invoice_subscriptions.c.invoice_id)
                     .join(fees, (fees.c.invoice_id == invoices.c.id)
                           & (fees.c.subscription_id == invoice_subscriptions.c.subscription_id)
                           & (fees.c.fee_type == "subscription")))
        .where(invoice_subscriptions.c.subscription_id == subscription_id, invoice_subscriptions.c.fee_from <= at,
               invoice_subscriptions.c.fee_to > at, invoice_subscriptions.c.fee_amount_cents > 0,
               invoices.c.status == "finalized", fees.c.amount_cents > 0)
        .order_by(invoice_subscriptions.c.fee_from.desc()).limit(1))).one_or_none()


async def credit_unused_fees(conn: AsyncConnection, items: Sequence[tuple[Subscribed, Due]],
                             notify: set[str]) -> None:
    """A credit note for each moment that ends a period paid in advance early, against the invoice that
    paid it, up to the fee paid (credit_note.created queued when the organization has endpoints)."""
    for sub, due in items:
        if due.credit_cents <= 0:
            continue
        paid = await _paid_fee(conn, sub.terms.subscription_id, due.at)
        if paid is None:  # never paid (a backdated period, a draft): nothing to credit
            continue
        sequential_id = (await conn.execute(select(func.coalesce(func.max(credit_notes.c.sequential_id), 0) + 1)
                                            .where(credit_notes.c.invoice_id == paid.invoice_id))).scalar_one()
        # the unused part of what was paid for the fee: less its share of the invoice's coupons, as Lago's
        share = Decimal(paid.precise_coupons_amount_cents)
        amount = round_cents(Decimal(min(due.credit_cents, paid.amount_cents)) * (paid.amount_cents - share)
                             / paid.amount_cents)
        taxes = FeeTaxes.of(Decimal(amount), await fee_taxes(conn, paid.fee_id))
        note_id = (await conn.execute(pg_insert(credit_notes).values(
            id=str(uuid.uuid4()), organization_id=sub.organization_id, customer_id=sub.terms.customer_id,
            invoice_id=paid.invoice_id, fee_id=paid.fee_id, subscription_id=sub.terms.subscription_id,
            billing_key=due.billing_key, reason=due.credit_reason, currency=paid.currency,
            credit_amount_cents=amount + taxes.amount_cents, balance_amount_cents=amount + taxes.amount_cents,
            taxes_amount_cents=taxes.amount_cents, taxes_rate=taxes.rate, credit_status="available",
            sequential_id=sequential_id, number=f"{paid.number}-CN{sequential_id:03d}",
            issuing_date=due.at.astimezone(sub.terms.zone).date(),
        ).on_conflict_do_nothing(constraint="uq_credit_notes_sub_billing_key").returning(credit_notes.c.id))
        ).scalar_one_or_none()
        if note_id is not None and sub.organization_id in notify:
            await enqueue_webhooks(conn, sub.organization_id, note_id, ["credit_note.created"])


async def fee_taxes(conn: AsyncConnection, fee_id: str) -> list[Tax]:
    """The taxes a fee was billed with (as they were then)."""
    rows = await conn.execute(select(fee_applied_taxes).where(fee_applied_taxes.c.fee_id == fee_id)
                              .order_by(fee_applied_taxes.c.position))
    return [Tax(row.tax_id, row.tax_code, row.tax_name, Decimal(row.tax_rate), row.tax_description) for row in rows]


async def available_credits(conn: AsyncConnection, customer_ids: Sequence[str]) -> dict[str, list[Credit]]:
    """Each customer's credit notes with a balance, oldest first (read under the customers' locks)."""
    found: dict[str, list[Credit]] = {customer_id: [] for customer_id in customer_ids}
    if not found:
        return found
    rows = await conn.execute(
        select(credit_notes.c.id, credit_notes.c.customer_id, credit_notes.c.balance_amount_cents)
        .where(credit_notes.c.customer_id.in_(list(found)), credit_notes.c.credit_status == "available",
               credit_notes.c.balance_amount_cents > 0)
        .order_by(credit_notes.c.created_at, credit_notes.c.id))
    for row in rows:
        found[row.customer_id].append(Credit(row.id, row.balance_amount_cents))
    return found


async def record_taken(conn: AsyncConnection, taken: Sequence[tuple[str, str, int]]) -> None:
    """Write (invoice id, credit note id, cents) taken: the applications, and the notes' new balances
    (consumed at 0). The invoices must be written already."""
    if not taken:
        return
    await conn.execute(insert(credit_note_applications),
                       [{"invoice_id": i, "credit_note_id": n, "amount_cents": c} for i, n, c in taken])
    for _, note_id, cents in taken:
        await conn.execute(update(credit_notes).where(credit_notes.c.id == note_id).values(
            balance_amount_cents=credit_notes.c.balance_amount_cents - cents, updated_at=func.now()))
    await conn.execute(update(credit_notes).where(credit_notes.c.id.in_([n for _, n, _ in taken]),
                                                  credit_notes.c.balance_amount_cents == 0)
                       .values(credit_status="consumed"))
