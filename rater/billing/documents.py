"""Load the objects billing announces — invoices, subscriptions, credit notes — with everything their
Lago documents show (adapter over rater.billing.render and rater.serializers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.catalog import plan_charges, subscription_query
from core.db.tables import credit_notes, customers, fees, invoice_subscriptions, invoices, plans, subscriptions
from rater import serializers
from rater.billing import render


async def customers_by_id(conn: AsyncConnection, ids: set[str]) -> dict[str, dict[str, Any]]:
    rows = (await conn.execute(select(customers).where(customers.c.id.in_(sorted(ids))))).all() if ids else []
    return {row.id: serializers.customer(row) for row in rows}


async def invoice_document(conn: AsyncConnection, invoice_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id))).one()
    customer = (await customers_by_id(conn, {row.customer_id}))[row.customer_id]
    moments = (await conn.execute(select(invoice_subscriptions).where(invoice_subscriptions.c.invoice_id == invoice_id)
                                  )).all()
    sub_rows = {s.id: s for s in (await conn.execute(subscription_query().where(
        subscriptions.c.id.in_([m.subscription_id for m in moments])))).all()}
    fee_rows = (await conn.execute(select(fees).where(fees.c.invoice_id == invoice_id).order_by(fees.c.position))
                ).all()
    true_ups = {f.true_up_parent_fee_id: f.id for f in fee_rows if f.true_up_parent_fee_id is not None}
    fee_docs = [render.fee(fee_row, row, customer["external_id"], sub_rows[fee_row.subscription_id].external_id,
                           sub_rows[fee_row.subscription_id].pay_in_advance, true_ups.get(fee_row.id))
                for fee_row in fee_rows]
    periods = [render.billing_period(m, sub_rows[m.subscription_id].external_id, sub_rows[m.subscription_id].plan_id)
               for m in moments]
    subs = [serializers.subscription(sub_rows[s]) for s in dict.fromkeys(m.subscription_id for m in moments)]
    return render.invoice_extended(row, customer, fee_docs, subs, periods)


async def subscription_document(conn: AsyncConnection, subscription_id: str, now: datetime | None = None
                                ) -> dict[str, Any]:
    """A subscription with its plan, as Lago answers create and get and sends it in webhooks."""
    row = (await conn.execute(subscription_query().where(subscriptions.c.id == subscription_id))).one()
    plan_row = (await conn.execute(select(plans).where(plans.c.id == row.plan_id))).one()
    charge_rows = (await plan_charges(conn, [row.plan_id]))[row.plan_id]
    return {**serializers.subscription(row, now), "plan": serializers.plan(plan_row, charge_rows),
            "applicable_usage_thresholds": []}


async def credit_note_documents(conn: AsyncConnection, credit_note_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Credit notes in the order asked, each with its invoice, customer and credited fee: five queries
    for a whole page, not five a note."""
    if not credit_note_ids:
        return []
    notes = {row.id: row for row in await conn.execute(
        select(credit_notes).where(credit_notes.c.id.in_(list(credit_note_ids))))}
    rows = list(notes.values())

    async def by_id(table: Any, ids: set[str]) -> dict[str, Any]:
        return {row.id: row for row in await conn.execute(select(table).where(table.c.id.in_(sorted(ids))))}

    invoice_rows = await by_id(invoices, {n.invoice_id for n in rows})
    fee_rows = await by_id(fees, {n.fee_id for n in rows})
    customers_found = await customers_by_id(conn, {n.customer_id for n in rows})
    subs = {row.id: row for row in await conn.execute(
        select(subscriptions.c.id, subscriptions.c.external_id, plans.c.pay_in_advance)
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .where(subscriptions.c.id.in_(sorted({n.subscription_id for n in rows}))))}
    documents = []
    for note_id in credit_note_ids:
        note = notes[note_id]
        invoice, customer, sub = invoice_rows[note.invoice_id], customers_found[note.customer_id], \
            subs[note.subscription_id]
        fee_doc = render.fee(fee_rows[note.fee_id], invoice, customer["external_id"], sub.external_id,
                             sub.pay_in_advance)
        documents.append(render.credit_note(note, invoice, customer, fee_doc))
    return documents


async def credit_note_document(conn: AsyncConnection, credit_note_id: str) -> dict[str, Any]:
    return (await credit_note_documents(conn, [credit_note_id]))[0]
