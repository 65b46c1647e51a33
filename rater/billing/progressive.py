"""Progressive billing invoices: one for each threshold level a subscription's period reached.

The alerts worker records a crossing (`progressive_crossings`, aggregator/alerts.py) with the usage it
saw per charge; the biller invoices pending crossings at its next delivery round (within a second).
The invoice (`invoice_type: progressive_billing`, finalized at once) bills that usage, less what the
period's earlier progressive invoices billed (`progressive_billing_credit_amount_cents`); the
period's regular invoice deducts all of them (rater.billing.writer, rater.billing.drafts).

One crossing, one transaction, under the customer's lock (the lock every writer of the customer's
invoices holds, so the period cannot be closed meanwhile):
1. re-read the crossing, still pending, with a row lock;
2. its period closed by now (its regular invoice was finalized first; the usage is billed there):
   marked `superseded`, no invoice; nothing left to bill (earlier progressive invoices covered it):
   `superseded` as well;
3. otherwise the invoice, its fees and its moment (billing key `progressive:<period>:<level>`, unique
   per subscription) are inserted, credit notes taken, the crossing marked `invoiced` with the invoice,
   and `invoice.created` queued. A crash before the commit leaves the crossing pending for the next round.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db.catalog import charge_line, plan_charges, subscription_query, usage_cycle
from core.db.locks import lock_customers
from core.db.tables import (
    closed_periods,
    fee_applied_taxes,
    invoice_applied_taxes,
    invoice_subscriptions,
    invoices,
    progressive_crossings,
)
from core.db.tables import fees as fees_table
from core.db.tables import subscriptions as subscriptions_table
from core.db.taxes import TaxBook
from core.db.thresholds import progressive_billed_cents
from core.db.webhooks import enqueue_webhooks
from core.domain.charges import amount_details
from core.domain.periods import key_start
from rater.billing.assemble import (
    FeeLine,
    fee_rows,
    invoice_number,
    payment_status_at_finalization,
    progressive_credit,
    take_credits,
    total_cents,
)
from rater.billing.coupons import active_coupons, record_coupons, reduce
from rater.billing.credits import available_credits, record_taken
from rater.billing.grouping import payment_due_date
from rater.billing.reads import last_sequential_ids
from rater.billing.taxing import fee_taxes_of, progressive_shares, tax_fees

BATCH = 50  # crossings invoiced per round
PROGRESSIVE_BILLING = "progressive_billing"  # such an invoice's type, and its moment's invoicing reason


async def invoice_crossings(engine: AsyncEngine) -> int:
    """Invoice the pending crossings, oldest first; the number of invoices written."""
    async with engine.connect() as conn:
        pending = list((await conn.execute(
            select(progressive_crossings.c.id).where(progressive_crossings.c.status == "pending")
            .order_by(progressive_crossings.c.reached_at).limit(BATCH))).scalars())
    written = 0
    for crossing_id in pending:
        async with engine.begin() as conn:
            written += await invoice_crossing(conn, crossing_id)
    return written


def charge_lines_billed(snapshot: dict[str, Any], charges: list[Any], start: datetime, end: datetime
                        ) -> list[FeeLine]:
    """The fees of a progressive invoice: each charge's usage as priced at the crossing, zero lines left out."""
    lines = []
    for charge in charges:
        line = charge_line(charge)
        seen = snapshot.get(line.charge_id)
        if seen is None or (seen["amount_cents"] == 0 and Decimal(seen["units"]) == 0):
            continue
        lines.append(FeeLine("charge", line.charge_id, line.metric.id, line.metric.code, line.metric_name,
                             line.invoice_display_name, Decimal(seen["units"]), seen["events_count"],
                             seen["amount_cents"], Decimal(seen["precise_amount_cents"]), start, end,
                             amount_details=amount_details(line.charge_model, line.properties, Decimal(seen["units"]))))
    return lines


async def invoice_crossing(conn: AsyncConnection, crossing_id: str) -> int:
    """Invoice one crossing in the caller's transaction (see the module's steps); 1 when an invoice was written."""
    sub_id = (await conn.execute(select(progressive_crossings.c.subscription_id)
                                 .where(progressive_crossings.c.id == crossing_id))).scalar_one()
    sub = (await conn.execute(subscription_query(plan_changes=False)
                              .where(subscriptions_table.c.id == sub_id))).one()
    await lock_customers(conn, [sub.customer_id])
    crossing = (await conn.execute(select(progressive_crossings).where(
        progressive_crossings.c.id == crossing_id, progressive_crossings.c.status == "pending").with_for_update(
    ))).one_or_none()
    if crossing is None:  # invoiced by another biller meanwhile
        return 0
    closed = (await conn.execute(select(exists().where(
        closed_periods.c.subscription_id == sub_id, closed_periods.c.period_key == crossing.period_key)))).scalar()
    period = usage_cycle(sub).period_at(key_start(crossing.period_key))
    billed = (await progressive_billed_cents(conn, [sub_id])).get((sub_id, crossing.period_key), 0)
    lines = charge_lines_billed(crossing.charges, (await plan_charges(conn, [sub.plan_id]))[sub.plan_id],
                                period.start if period else crossing.reached_at, crossing.reached_at)
    total = total_cents(lines)
    credit = progressive_credit(total, billed)
    if closed or period is None or total - credit <= 0:
        await conn.execute(update(progressive_crossings).where(progressive_crossings.c.id == crossing_id)
                           .values(status="superseded"))
        return 0
    invoice_id = str(uuid.uuid4())
    term = sub.payment_term
    issuing_date = crossing.reached_at.astimezone(ZoneInfo(sub.timezone or "UTC")).date()
    sequential_id = (await last_sequential_ids(conn, [sub.customer_id]))[sub.customer_id] + 1
    rows = fee_rows(invoice_id, sub_id, lines, sub.plan_amount_currency, 0)
    book = await TaxBook.load(conn, charge_ids=[line.charge_id for line in lines], plan_ids=[sub.plan_id],
                              customer_ids=[sub.customer_id], organization_ids=[sub.organization_id])
    shares = progressive_shares(rows, credit)
    available = (await active_coupons(conn, [sub.customer_id]))[sub.customer_id]
    reduced = reduce(invoice_id, rows, {sub_id: sub.plan_id}, shares, total - credit, available,
                     sub.plan_amount_currency)
    taxed = tax_fees(invoice_id, rows, [a + b for a, b in zip(shares, reduced.shares, strict=True)],
                     partial(fee_taxes_of, book, {sub_id: sub.plan_id}, sub.customer_id, sub.organization_id))
    due = total - credit - reduced.coupons_cents + taxed.invoice_taxes.amount_cents
    taken = [(invoice_id, note_id, cents) for note_id, cents in
             take_credits((await available_credits(conn, [sub.customer_id]))[sub.customer_id], due)]
    credited = sum(cents for *_, cents in taken)
    await conn.execute(insert(invoices).values(
        id=invoice_id, organization_id=sub.organization_id, customer_id=sub.customer_id, due_at=crossing.reached_at,
        issuing_date=issuing_date, grace_until=crossing.reached_at, net_payment_term=term,
        payment_due_date=payment_due_date(issuing_date, term), status="finalized",
        payment_status=payment_status_at_finalization(due - credited), currency=sub.plan_amount_currency,
        invoice_type=PROGRESSIVE_BILLING, fees_amount_cents=total, progressive_billing_credit_amount_cents=credit,
        credit_notes_amount_cents=credited, total_amount_cents=due - credited, sequential_id=sequential_id,
        taxes_amount_cents=taxed.invoice_taxes.amount_cents, taxes_rate=taxed.invoice_taxes.rate,
        coupons_amount_cents=reduced.coupons_cents,
        number=invoice_number(sub.organization_name, sub.customer_id, sequential_id), finalized_at=func.now()))
    await conn.execute(insert(invoice_subscriptions).values(
        invoice_id=invoice_id, subscription_id=sub_id,
        billing_key=f"progressive:{crossing.period_key}:{crossing.level_cents}", kind="progressive",
        invoicing_reason=PROGRESSIVE_BILLING, fee_amount_cents=0, charges_from=period.start,
        charges_to=crossing.reached_at, period_start=period.start, period_end=period.end))
    await conn.execute(insert(fees_table), rows)
    for table, applied in ((fee_applied_taxes, taxed.fee_applied_taxes),
                           (invoice_applied_taxes, taxed.invoice_applied_taxes)):
        if applied:
            await conn.execute(insert(table), applied)
    await record_taken(conn, taken)
    await record_coupons(conn, reduced.credit_rows, reduced.taken)
    await conn.execute(update(progressive_crossings).where(progressive_crossings.c.id == crossing_id)
                       .values(status="invoiced", invoice_id=invoice_id))
    await enqueue_webhooks(conn, sub.organization_id, invoice_id, ["invoice.created"])
    return 1
