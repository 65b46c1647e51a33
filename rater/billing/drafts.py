"""Draft invoices: refreshed from the archive, and finalized (periods closed, numbered, announced).

Every change of an invoice happens inside one transaction that first takes the customer's
transaction-level advisory lock (core.db.locks), so two billers (or a biller and
`PUT /invoices/.../finalize`) work on one customer's invoices one after the other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.catalog import FINALIZE_ZERO_AMOUNT, PAYMENT_TERM
from core.db.locks import close_periods, lock_customers
from core.db.tables import customers, fees, invoice_subscriptions, invoices, organizations
from core.db.thresholds import progressive_billed_cents
from core.db.webhooks import enqueue_webhooks
from core.domain.periods import Period
from rater.billing.archive_usage import window_usage
from rater.billing.assemble import (
    fee_rows,
    final_status,
    finalizes_zero_amount,
    invoice_number,
    payment_status_at_finalization,
    progressive_credit,
    take_credits,
    usage_fees,
)
from rater.billing.credits import available_credits, record_taken
from rater.billing.grouping import payment_due_date
from rater.billing.reads import last_sequential_ids, load_catalog, subscribed_by_id
from rater.billing.schedule import Due, charges_days


async def _lock_draft(conn: AsyncConnection, invoice_id: str) -> Any:
    """The invoice under its customer's lock and a row lock; None when it is not a draft (any more)."""
    invoice = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id))).one()
    await lock_customers(conn, [invoice.customer_id])
    invoice = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id).with_for_update())).one()
    return invoice if invoice.status == "draft" else None


async def _moments(conn: AsyncConnection, invoice_id: str) -> list[Any]:
    return list((await conn.execute(
        select(invoice_subscriptions).where(invoice_subscriptions.c.invoice_id == invoice_id))).all())


async def _refresh_locked(conn: AsyncConnection, invoice: Any, moments: list[Any]) -> int:
    """Recompute a locked draft's usage fees from the archive (a new snapshot: late events count) and
    what it deducts for its periods' progressive invoices; what it bills then (before credit notes), in
    cents. `moments`: its invoice_subscriptions rows."""
    invoice_id = invoice.id
    found = await subscribed_by_id(conn, [m.subscription_id for m in moments])
    subscribed = {s.terms.subscription_id: s for s in found}
    catalog = await load_catalog(conn, [s.plan_id for s in subscribed.values()])
    await conn.execute(delete(fees).where(fees.c.invoice_id == invoice_id, fees.c.fee_type == "charge"))
    position = (await conn.execute(select(func.count()).where(fees.c.invoice_id == invoice_id))).scalar_one()
    rows: list[dict[str, Any]] = []
    for moment in moments:
        if moment.charges_from is None:
            continue
        sub = subscribed[moment.subscription_id]
        window = Period(moment.charges_from, moment.charges_to)
        due = Due(moment.kind, invoice.due_at, moment.billing_key, moment.fee_amount_cents, moment.fee_from,
                  moment.fee_to, window, Period(moment.period_start, moment.period_end),
                  charges_days=charges_days(sub.terms, window))
        lines = catalog.get(sub.plan_id, [])
        usage = await window_usage(conn, sub.organization_id, sub.external_id, window, due.closes or window,
                                   [line.metric for line in lines])
        rows += fee_rows(invoice_id, sub.terms.subscription_id, usage_fees(due, lines, usage, invoice.currency),
                         invoice.currency, position + len(rows))
    if rows:
        await conn.execute(insert(fees), rows)
    total = int((await conn.execute(select(func.coalesce(func.sum(fees.c.amount_cents), 0))
                                    .where(fees.c.invoice_id == invoice_id))).scalar_one())
    billed = await progressive_billed_cents(conn, [m.subscription_id for m in moments])
    progressive = progressive_credit(total, sum(billed.get((m.subscription_id, m.closes_period_key), 0)
                                                for m in moments if m.charges_from is not None))
    await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
        fees_amount_cents=total, progressive_billing_credit_amount_cents=progressive,
        total_amount_cents=total - progressive, updated_at=func.now()))
    return total - progressive


async def refresh_draft(conn: AsyncConnection, invoice_id: str) -> bool:
    """Recompute a draft's usage fees from the archive (late events count); False when not a draft."""
    invoice = await _lock_draft(conn, invoice_id)
    if invoice is None:
        return False
    await _refresh_locked(conn, invoice, await _moments(conn, invoice_id))
    return True


async def finalize_draft(conn: AsyncConnection, invoice_id: str) -> bool:
    """Close the draft's billing periods, refresh it from the archive, then number it, in the
    caller's transaction (committed durably); False when it was not a draft.

    The order is what keeps late events from vanishing: the periods are closed under the
    subscriptions' exclusive locks (core.db.locks) before the usage is read, so an event is
    either archived before the read (on this invoice) or refused by the archive as period_closed.
    """
    invoice = await _lock_draft(conn, invoice_id)
    if invoice is None:
        return False
    moments = await _moments(conn, invoice_id)
    await close_periods(conn, [(m.subscription_id, m.closes_period_key) for m in moments
                               if m.closes_period_key is not None])
    total = await _refresh_locked(conn, invoice, moments)
    name = (await conn.execute(select(organizations.c.name).where(organizations.c.id == invoice.organization_id))
            ).scalar_one()
    # the payment term and $0 rule in force when the invoice is finalized, as Lago reads them then
    customer = (await conn.execute(
        select(PAYMENT_TERM.label("term"), FINALIZE_ZERO_AMOUNT.label("zero"))
        .join_from(customers, organizations, organizations.c.id == customers.c.organization_id)
        .where(customers.c.id == invoice.customer_id))).one()
    if final_status(total, finalizes_zero_amount(customer.zero)) == "closed":
        await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
            status="closed", updated_at=func.now()))
        return True
    term = customer.term
    sequential_id = (await last_sequential_ids(conn, [invoice.customer_id]))[invoice.customer_id] + 1
    credits = (await available_credits(conn, [invoice.customer_id]))[invoice.customer_id]
    taken = [(invoice_id, note_id, cents) for note_id, cents in take_credits(credits, total)]
    credited = sum(cents for *_, cents in taken)
    await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
        status="finalized", sequential_id=sequential_id, net_payment_term=term,
        payment_due_date=payment_due_date(invoice.issuing_date, term),
        number=invoice_number(name, invoice.customer_id, sequential_id), credit_notes_amount_cents=credited,
        total_amount_cents=total - credited, payment_status=payment_status_at_finalization(total - credited),
        finalized_at=func.now(), updated_at=func.now(),
    ))
    await record_taken(conn, taken)
    await enqueue_webhooks(conn, invoice.organization_id, invoice_id, ["invoice.created"])
    return True
