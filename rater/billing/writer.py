"""Writing invoices: many groups per transaction, each invoice whole with its fees and moments.

One transaction holds up to a batch of groups (whole customers, in time order): it locks those
customers (advisory locks taken in customer order, so concurrent billers never deadlock), then
closes the billing periods of the invoices it finalizes and reads their usage (see write_groups),
then inserts every invoice, moment, fee and outbox row in a handful of statements. A
moment that a racing biller invoiced meanwhile fails the unique key (subscription, billing_key)
and rolls the whole batch back; the biller then writes that batch one group per transaction, so
only the conflicting groups are skipped. Each invoice is thus committed with all its fees or not
at all, and at most once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.locks import close_periods, lock_customers
from core.db.tables import fee_applied_taxes, fees, invoice_applied_taxes, invoice_subscriptions, invoices
from core.db.taxes import TaxBook
from core.db.thresholds import progressive_billed_cents
from core.db.webhooks import enqueue_webhooks
from core.domain.coupons import Taken
from rater.billing.assemble import (
    draft_number,
    fee_rows,
    final_status,
    invoice_number,
    moment_fees,
    payment_status_at_finalization,
    progressive_credit,
    take_credits,
    total_cents,
)
from rater.billing.coupons import active_coupons, record_coupons, reduce
from rater.billing.credits import available_credits, credit_unused_fees, record_taken
from rater.billing.grouping import Catalog, Group, grace_until, is_final, payment_due_date
from rater.billing.reads import UsageByMoment, last_sequential_ids, prefetch_usage
from rater.billing.taxing import fee_taxes_of, progressive_shares, tax_fees

# Customers are locked in their order (core.db.locks): no deadlock. A transaction that
# finalizes invoices commits durably (a finalized invoice is acted upon: numbered, sent; and the
# aggregator refuses events from the moment a period's close is visible). One that only writes drafts
# commits asynchronously (no WAL flush wait): a crash loses at most the last ~3 x wal_writer_delay
# (600 ms by default) of such commits, and nothing acted on them yet: every draft row is recomputed
# identically from the archive by the next run, drafts are refreshed from the archive before they
# are finalized, and the webhooks such a transaction queues are due a second after it (core.db.webhooks).
_ASYNC_COMMIT = text("SELECT set_config('synchronous_commit', 'off', true)")


def _moment_row(invoice_id: str, sub: Any, due: Any) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id, "subscription_id": sub.terms.subscription_id, "billing_key": due.billing_key,
        "kind": due.kind, "invoicing_reason": due.invoicing_reason, "fee_amount_cents": due.fee_cents,
        "fee_from": due.fee_from, "fee_to": due.fee_to,
        "charges_from": due.charges.start if due.charges else None,
        "charges_to": due.charges.end if due.charges else None,
        "closes_period_key": due.closes.key if due.closes else None,
        "period_start": due.closes.start if due.closes else None,
        "period_end": due.closes.end if due.closes else None,
    }


async def write_groups(conn: AsyncConnection, groups: Sequence[Group], catalog: Catalog, as_of: datetime,
                       usage: UsageByMoment, notify: set[str]) -> int:
    """Invoice the groups in the caller's transaction; the number of invoices written.

    A group due before the end of its grace period is finalized at once: numbered as it is inserted,
    its billing periods closed, invoice.created queued (a draft: invoice.drafted, as Lago, so a
    receiver never collects payment on a draft). Its usage is not
    taken from `usage` (read before this transaction): the periods are closed first, under the
    subscriptions' exclusive locks, and only then is its usage read from the archive, so every
    event the archive accepted for a closed period is on this invoice, and every later one is
    refused as period_closed by the archive insert (aggregator/archive.py).
    """
    await lock_customers(conn, [g.customer_id for g in groups])
    finals = [group for group in groups if is_final(group, as_of)]
    final_items = [item for group in finals for item in group.items]
    await close_periods(conn, [(sub.terms.subscription_id, due.closes.key)
                               for sub, due in final_items if due.closes is not None])
    if not final_items:  # finalized invoices (with or without a period to close) commit durably
        await conn.execute(_ASYNC_COMMIT)
    if final_items:  # read after the close, in this transaction (new snapshot: READ COMMITTED)
        usage = {**usage, **await prefetch_usage(conn, final_items, catalog)}
    # periods paid in advance and ended early are credited first: a finalized invoice of this batch
    # (the upgrade's) already takes the note
    await credit_unused_fees(conn, [item for group in groups for item in group.items], notify)
    credits = await available_credits(conn, sorted({g.customer_id for g in finals}))
    billed = await progressive_billed_cents(conn, {sub.terms.subscription_id for g in groups for sub, _ in g.items})
    taken: list[tuple[str, str, int]] = []
    # a finalized invoice takes its customer's next sequential id (the customer lock is held)
    last = await last_sequential_ids(conn, [g.customer_id for g in finals])
    # finalized at the transaction's time (as finalize_draft), read only when this batch finalizes any
    now = (await conn.execute(select(func.now()))).scalar_one() if final_items else None
    plan_ids = {sub.plan_id for g in groups for sub, _ in g.items}
    book = await TaxBook.load(
        conn, charge_ids=[line.charge_id for plan_id in plan_ids for line in catalog.get(plan_id, [])],
        plan_ids=plan_ids, customer_ids=[g.customer_id for g in groups],
        organization_ids=[g.organization_id for g in groups])
    available = await active_coupons(conn, sorted({g.customer_id for g in finals}))
    written, moments, fee_list, webhooks, fee_taxes, invoice_taxes = [], [], [], [], [], []
    coupon_rows: list[dict[str, Any]] = []
    coupons_taken: list[Taken] = []
    for group in groups:
        invoice_id = str(uuid.uuid4())
        rows: list[dict[str, Any]] = []
        total = 0
        for sub, due in group.items:
            lines = moment_fees(due, sub.plan, catalog.get(sub.plan_id, []),
                                usage.get((sub.terms.subscription_id, due.billing_key), {}), sub.currency)
            rows += fee_rows(invoice_id, sub.terms.subscription_id, lines, group.currency, len(rows))
            total += total_cents(lines)
            moments.append(_moment_row(invoice_id, sub, due))
        fee_list += rows
        ends = grace_until(group)
        final = is_final(group, as_of)
        progressive = progressive_credit(total, sum(
            billed.get((sub.terms.subscription_id, due.closes.key), 0) for sub, due in group.items
            if due.closes is not None and due.charges is not None))
        subtotal = total - progressive
        plan_of = {sub.terms.subscription_id: sub.plan_id for sub, _ in group.items}
        # terminations whose invoice is skipped: their moments are billed for good, unseen
        status = "draft" if not final else "closed" if group.skipped else final_status(subtotal,
                                                                                       group.finalize_zero_amount)
        shares = progressive_shares(rows, progressive)
        coupons_cents = 0
        if status == "finalized" and total > 0:  # a draft takes its coupons when it is finalized
            reduced = reduce(invoice_id, rows, plan_of, shares, subtotal, available[group.customer_id],
                             group.currency)
            shares = [a + b for a, b in zip(shares, reduced.shares, strict=True)]
            coupons_cents = reduced.coupons_cents
            coupon_rows += reduced.credit_rows
            coupons_taken += reduced.taken
        subtotal -= coupons_cents
        taxed = tax_fees(invoice_id, rows, shares, partial(
            fee_taxes_of, book, plan_of, group.customer_id, group.organization_id))
        fee_taxes += taxed.fee_applied_taxes
        invoice_taxes += taxed.invoice_applied_taxes
        taxes_cents = taxed.invoice_taxes.amount_cents
        sequential_id, number = None, draft_number(group.organization_name, group.customer_id)
        credited = 0
        if status == "finalized":
            sequential_id = last[group.customer_id] = last[group.customer_id] + 1
            number = invoice_number(group.organization_name, group.customer_id, sequential_id)
            for note_id, cents in take_credits(credits[group.customer_id], subtotal + taxes_cents):
                taken.append((invoice_id, note_id, cents))
                credited += cents
        written.append({
            "id": invoice_id, "organization_id": group.organization_id, "customer_id": group.customer_id,
            "due_at": group.at, "issuing_date": group.issuing_date, "grace_until": ends,
            "net_payment_term": group.payment_term_days,
            "payment_due_date": payment_due_date(group.issuing_date, group.payment_term_days),
            "status": status,
            "payment_status": (payment_status_at_finalization(subtotal + taxes_cents - credited)
                               if status == "finalized" else "pending"),
            "currency": group.currency, "fees_amount_cents": total,
            "progressive_billing_credit_amount_cents": progressive, "credit_notes_amount_cents": credited,
            "coupons_amount_cents": coupons_cents,
            "taxes_amount_cents": taxes_cents, "taxes_rate": taxed.invoice_taxes.rate,
            "total_amount_cents": subtotal + taxes_cents - credited,
            "sequential_id": sequential_id, "number": number,
            "finalized_at": now if status == "finalized" else None})
        if group.organization_id in notify and status != "closed":
            webhooks.append((group.organization_id, invoice_id,
                             ["invoice.created"] if final else ["invoice.drafted"]))
    # invoices in the groups' order (one customer's in time order: its sequential ids follow the calendar)
    for table, rows in ((invoices, written), (invoice_subscriptions, moments), (fees, fee_list),
                        (fee_applied_taxes, fee_taxes), (invoice_applied_taxes, invoice_taxes)):
        if rows:
            await conn.execute(insert(table), rows)
    await record_taken(conn, taken)
    await record_coupons(conn, coupon_rows, coupons_taken)
    for organization_id, invoice_id, kinds in webhooks:
        await enqueue_webhooks(conn, organization_id, invoice_id, kinds)
    return len(groups)
