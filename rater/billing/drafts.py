"""Draft invoices: refreshed from the archive, and finalized (periods closed, numbered, announced).

Every change of an invoice happens inside one transaction that first takes the customer's
transaction-level advisory lock (core.db.locks), so two billers (or a biller and
`PUT /invoices/.../finalize`) work on one customer's invoices one after the other.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.catalog import FINALIZE_ZERO_AMOUNT, PAYMENT_TERM
from core.db.locks import close_periods, lock_customers
from core.db.tables import (
    customers,
    fee_applied_taxes,
    fees,
    invoice_applied_taxes,
    invoice_documents,
    invoice_subscriptions,
    invoices,
    organizations,
)
from core.db.taxes import TaxBook
from core.db.thresholds import progressive_billed_cents
from core.db.webhooks import enqueue_webhooks
from core.domain.coupons import AppliedCoupon
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
from rater.billing.coupons import active_coupons, record_coupons, reduce
from rater.billing.credits import available_credits, record_taken
from rater.billing.grouping import payment_due_date
from rater.billing.reads import last_sequential_ids, load_catalog, subscribed_by_id
from rater.billing.schedule import Due, charges_days
from rater.billing.taxing import fee_taxes_of, progressive_shares, tax_fees


async def _lock_draft(conn: AsyncConnection, invoice_id: str) -> Any:
    """The invoice under its customer's lock and a row lock; None when it is not a draft (any more)."""
    invoice = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id))).one()
    await lock_customers(conn, [invoice.customer_id])
    invoice = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id).with_for_update())).one()
    return invoice if invoice.status == "draft" else None


async def _moments(conn: AsyncConnection, invoice_id: str) -> list[Any]:
    return list((await conn.execute(
        select(invoice_subscriptions).where(invoice_subscriptions.c.invoice_id == invoice_id))).all())


async def _refresh_locked(conn: AsyncConnection, invoice: Any, moments: list[Any],
                          available: list[AppliedCoupon] | None = None) -> tuple[int, int, int]:
    """Recompute a locked draft's usage fees from the archive (a new snapshot: late events count), what it
    deducts for its periods' progressive invoices, its coupons when it is being finalized (`available`: its
    customer's) and its taxes; what it bills then before coupons, taxes and credit notes, its coupons and
    its taxes, in cents. `moments`: its invoice_subscriptions rows."""
    invoice_id = invoice.id
    # the draft's document no longer shows it (rater.billing.files: downloading it again makes a new one)
    await conn.execute(delete(invoice_documents).where(invoice_documents.c.invoice_id == invoice_id))
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
    all_rows = [dict(row._mapping) for row in await conn.execute(
        select(fees).where(fees.c.invoice_id == invoice_id).order_by(fees.c.position))]
    total = sum(row["amount_cents"] for row in all_rows)
    billed = await progressive_billed_cents(conn, [m.subscription_id for m in moments])
    progressive = progressive_credit(total, sum(billed.get((m.subscription_id, m.closes_period_key), 0)
                                                for m in moments if m.charges_from is not None))
    plan_of = {s.terms.subscription_id: s.plan_id for s in subscribed.values()}
    shares = progressive_shares(all_rows, progressive)
    coupons_cents = 0
    if available is not None and total > 0:
        reduced = reduce(invoice_id, all_rows, plan_of, shares, total - progressive, available, invoice.currency)
        shares = [a + b for a, b in zip(shares, reduced.shares, strict=True)]
        coupons_cents = reduced.coupons_cents
        await record_coupons(conn, reduced.credit_rows, reduced.taken)
    taxes_cents = await _retax(conn, invoice, all_rows, shares, plan_of)
    await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
        fees_amount_cents=total, progressive_billing_credit_amount_cents=progressive,
        coupons_amount_cents=coupons_cents, total_amount_cents=total - progressive - coupons_cents + taxes_cents,
        updated_at=func.now()))
    return total - progressive, coupons_cents, taxes_cents


async def _retax(conn: AsyncConnection, invoice: Any, fee_rows: list[dict[str, Any]], shares: list[Decimal],
                 plan_of: dict[str, str]) -> int:
    """Tax a draft's fees again with the taxes in force now (a draft follows its customer's, plan's and
    charges' taxes until it is finalized, as Lago refreshes it); the invoice's taxes in cents."""
    book = await TaxBook.load(conn, charge_ids=[row["charge_id"] for row in fee_rows], plan_ids=plan_of.values(),
                              customer_ids=[invoice.customer_id], organization_ids=[invoice.organization_id])
    taxed = tax_fees(invoice.id, fee_rows, shares,
                     partial(fee_taxes_of, book, plan_of, invoice.customer_id, invoice.organization_id))
    fee_ids = [row["id"] for row in fee_rows]
    if fee_ids:
        await conn.execute(delete(fee_applied_taxes).where(fee_applied_taxes.c.fee_id.in_(fee_ids)))
    await conn.execute(delete(invoice_applied_taxes).where(invoice_applied_taxes.c.invoice_id == invoice.id))
    for row in fee_rows:
        await conn.execute(update(fees).where(fees.c.id == row["id"]).values(
            taxes_amount_cents=row["taxes_amount_cents"], taxes_rate=row["taxes_rate"],
            taxes_precise_amount_cents=row["taxes_precise_amount_cents"],
            precise_coupons_amount_cents=row["precise_coupons_amount_cents"]))
    for table, applied in ((fee_applied_taxes, taxed.fee_applied_taxes),
                           (invoice_applied_taxes, taxed.invoice_applied_taxes)):
        if applied:
            await conn.execute(insert(table), applied)
    await conn.execute(update(invoices).where(invoices.c.id == invoice.id).values(
        taxes_amount_cents=taxed.invoice_taxes.amount_cents, taxes_rate=taxed.invoice_taxes.rate))
    return taxed.invoice_taxes.amount_cents


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
    available = (await active_coupons(conn, [invoice.customer_id]))[invoice.customer_id]
    before_coupons, coupons_cents, taxes_cents = await _refresh_locked(conn, invoice, moments, available)
    name = (await conn.execute(select(organizations.c.name).where(organizations.c.id == invoice.organization_id))
            ).scalar_one()
    # the payment term and $0 rule in force when the invoice is finalized, as Lago reads them then
    customer = (await conn.execute(
        select(PAYMENT_TERM.label("term"), FINALIZE_ZERO_AMOUNT.label("zero"))
        .join_from(customers, organizations, organizations.c.id == customers.c.organization_id)
        .where(customers.c.id == invoice.customer_id))).one()
    if final_status(before_coupons, finalizes_zero_amount(customer.zero)) == "closed":
        await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
            status="closed", updated_at=func.now()))
        return True
    total = before_coupons - coupons_cents  # what is billed before taxes
    term = customer.term
    sequential_id = (await last_sequential_ids(conn, [invoice.customer_id]))[invoice.customer_id] + 1
    credits = (await available_credits(conn, [invoice.customer_id]))[invoice.customer_id]
    taken = [(invoice_id, note_id, cents) for note_id, cents in take_credits(credits, total + taxes_cents)]
    credited = sum(cents for *_, cents in taken)
    await conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(
        status="finalized", sequential_id=sequential_id, net_payment_term=term,
        payment_due_date=payment_due_date(invoice.issuing_date, term),
        number=invoice_number(name, invoice.customer_id, sequential_id), credit_notes_amount_cents=credited,
        total_amount_cents=total + taxes_cents - credited,
        payment_status=payment_status_at_finalization(total + taxes_cents - credited),
        finalized_at=func.now(), updated_at=func.now(),
    ))
    await record_taken(conn, taken)
    await enqueue_webhooks(conn, invoice.organization_id, invoice_id, ["invoice.created"])
    return True
