"""Load the objects billing announces — invoices, subscriptions, credit notes — with everything their
Lago documents show (adapter over rater.billing.render and rater.serializers)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.catalog import plan_charges, plan_usage_thresholds, shown_usage_thresholds, subscription_query
from core.db.tables import (
    alerts,
    billable_metrics,
    charge_taxes,
    credit_notes,
    customer_taxes,
    customers,
    fee_applied_taxes,
    fees,
    invoice_applied_taxes,
    invoice_metadata,
    invoice_subscriptions,
    invoices,
    plan_taxes,
    plans,
    progressive_crossings,
    subscriptions,
    triggered_alerts,
    usage_thresholds,
)
from core.db.taxes import taxes_of
from rater import serializers
from rater.billing import render
from rater.billing.coupons import credits_of
from rater.billing.files import DocumentLinks, document_links


async def customers_by_id(conn: AsyncConnection, ids: set[str]) -> dict[str, dict[str, Any]]:
    rows = (await conn.execute(select(customers).where(customers.c.id.in_(sorted(ids))))).all() if ids else []
    tax_rows = await taxes_of(conn, customer_taxes, [row.id for row in rows])
    return {row.id: serializers.customer(row, tax_rows[row.id]) for row in rows}


async def plan_documents(conn: AsyncConnection, plan_rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Plans as Lago shows them: with their charges, progressive billing thresholds and taxes."""
    ids = [row.id for row in plan_rows]
    charges_by_plan = await plan_charges(conn, ids)
    thresholds = await plan_usage_thresholds(conn, ids)
    tax_rows = await taxes_of(conn, plan_taxes, ids)
    charge_tax_rows = await taxes_of(conn, charge_taxes, [c.id for plan in charges_by_plan.values() for c in plan])
    return [serializers.plan(row, charges_by_plan[row.id], thresholds[row.id], tax_rows[row.id], charge_tax_rows)
            for row in plan_rows]


async def invoice_document(conn: AsyncConnection, invoice_id: str, links: DocumentLinks) -> dict[str, Any]:
    """An invoice as fetched one by one and sent in webhooks, with a fresh link to its document when it has one."""
    row = (await conn.execute(select(invoices).where(invoices.c.id == invoice_id))).one()
    customer = (await customers_by_id(conn, {row.customer_id}))[row.customer_id]
    moments = (await conn.execute(select(invoice_subscriptions).where(invoice_subscriptions.c.invoice_id == invoice_id)
                                  )).all()
    sub_rows = {s.id: s for s in (await conn.execute(subscription_query().where(
        subscriptions.c.id.in_([m.subscription_id for m in moments])))).all()}
    fee_rows = (await conn.execute(select(fees).where(fees.c.invoice_id == invoice_id).order_by(fees.c.position))
                ).all()
    true_ups = {f.true_up_parent_fee_id: f.id for f in fee_rows if f.true_up_parent_fee_id is not None}
    fee_taxes = await applied_taxes_of(conn, fee_applied_taxes.c.fee_id, [f.id for f in fee_rows])
    fee_docs = [render.fee(fee_row, row, customer["external_id"], sub_rows[fee_row.subscription_id].external_id,
                           sub_rows[fee_row.subscription_id].pay_in_advance, true_ups.get(fee_row.id),
                           fee_taxes[fee_row.id])
                for fee_row in fee_rows]
    periods = [render.billing_period(m, sub_rows[m.subscription_id].external_id, sub_rows[m.subscription_id].plan_id)
               for m in moments]
    subs = [serializers.subscription(sub_rows[s]) for s in dict.fromkeys(m.subscription_id for m in moments)]
    applied = (await applied_usage_thresholds(conn, [row.id])).get(row.id, [])
    metadata = (await invoice_metadata_of(conn, [row.id])).get(row.id, [])
    taxes = (await applied_taxes_of(conn, invoice_applied_taxes.c.invoice_id, [row.id]))[row.id]
    credits = (await credits_of(conn, [row.id]))[row.id]
    file_url = (await document_links(conn, [row.id], links)).get(row.id, "")
    return render.invoice_extended(row, customer, fee_docs, subs, periods, applied, metadata, taxes, credits,
                                   file_url)


async def applied_taxes_of(conn: AsyncConnection, owner: Any, owner_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The taxes each fee or invoice carries (`owner`: the fee_id or invoice_id column), in order."""
    found: dict[str, list[Any]] = {owner_id: [] for owner_id in owner_ids}
    if owner_ids:
        for item in await conn.execute(select(owner.table).where(owner.in_(list(owner_ids)))
                                       .order_by(owner, owner.table.c.position)):
            found[getattr(item, owner.name)].append(item)
    return found


async def invoice_metadata_of(conn: AsyncConnection, invoice_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Each invoice's metadata rows, oldest first (one query for a page)."""
    found: dict[str, list[Any]] = {}
    if invoice_ids:
        for item in await conn.execute(select(invoice_metadata).where(
                invoice_metadata.c.invoice_id.in_(list(invoice_ids))).order_by(
                invoice_metadata.c.created_at, invoice_metadata.c.key)):
            found.setdefault(item.invoice_id, []).append(item)
    return found


async def applied_usage_thresholds(conn: AsyncConnection, invoice_ids: Sequence[str]
                                   ) -> dict[str, list[dict[str, Any]]]:
    """The threshold each progressive billing invoice among these was issued for (one query for a page)."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not invoice_ids:
        return found
    rows = await conn.execute(
        select(progressive_crossings, usage_thresholds.c.id.label("threshold_id"), usage_thresholds.c.amount_cents,
               usage_thresholds.c.threshold_display_name, usage_thresholds.c.recurring,
               usage_thresholds.c.created_at, usage_thresholds.c.updated_at)
        .join(usage_thresholds, usage_thresholds.c.id == progressive_crossings.c.usage_threshold_id)
        .where(progressive_crossings.c.invoice_id.in_(list(invoice_ids))))
    for row in rows:
        threshold = SimpleNamespace(id=row.threshold_id, threshold_display_name=row.threshold_display_name,
                                    amount_cents=row.amount_cents, recurring=row.recurring,
                                    created_at=row.created_at, updated_at=row.updated_at)
        found.setdefault(row.invoice_id, []).append(render.applied_usage_threshold(row, threshold))
    return found


async def triggered_alert_document(conn: AsyncConnection, triggered_id: str) -> dict[str, Any]:
    """An `alert.triggered` webhook's object."""
    row = (await conn.execute(select(triggered_alerts).where(triggered_alerts.c.id == triggered_id))).one()
    alert = (await conn.execute(
        select(alerts, billable_metrics.c.code.label("metric_code"))
        .outerjoin(billable_metrics, billable_metrics.c.id == alerts.c.billable_metric_id)
        .where(alerts.c.id == row.alert_id))).one()
    sub = (await conn.execute(subscription_query(plan_changes=False).where(
        subscriptions.c.id == row.subscription_id))).one()
    return render.triggered_alert(row, alert, sub, alert.metric_code)


async def usage_threshold_reached_document(conn: AsyncConnection, crossing_id: str) -> dict[str, Any]:
    """A `subscription.usage_threshold_reached` webhook's object: the subscription with its plan and
    customer, and the threshold reached."""
    crossing = (await conn.execute(select(progressive_crossings)
                                   .where(progressive_crossings.c.id == crossing_id))).one()
    threshold = (await conn.execute(select(usage_thresholds).where(
        usage_thresholds.c.id == crossing.usage_threshold_id))).one()
    document = await subscription_document(conn, crossing.subscription_id)
    customer_id = (await conn.execute(select(subscriptions.c.customer_id).where(
        subscriptions.c.id == crossing.subscription_id))).scalar_one()
    customer = (await customers_by_id(conn, {customer_id}))[customer_id]
    return {**document, "customer": customer, "usage_threshold": serializers.usage_threshold(threshold)}


async def subscription_document(conn: AsyncConnection, subscription_id: str, now: datetime | None = None
                                ) -> dict[str, Any]:
    """A subscription with its plan and the progressive billing thresholds that apply to it, as Lago answers
    create, get and update and sends it in webhooks."""
    row = (await conn.execute(subscription_query().where(subscriptions.c.id == subscription_id))).one()
    plan_row = (await conn.execute(select(plans).where(plans.c.id == row.plan_id))).one()
    applicable = (await shown_usage_thresholds(conn, [row]))[row.id]
    return {**serializers.subscription(row, now, applicable), "plan": (await plan_documents(conn, [plan_row]))[0]}


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
    fee_taxes = await applied_taxes_of(conn, fee_applied_taxes.c.fee_id, sorted(fee_rows))
    documents = []
    for note_id in credit_note_ids:
        note = notes[note_id]
        invoice, customer, sub = invoice_rows[note.invoice_id], customers_found[note.customer_id], \
            subs[note.subscription_id]
        fee_doc = render.fee(fee_rows[note.fee_id], invoice, customer["external_id"], sub.external_id,
                             sub.pay_in_advance, applied_taxes=fee_taxes[note.fee_id])
        documents.append(render.credit_note(note, invoice, customer, fee_doc))
    return documents


async def credit_note_document(conn: AsyncConnection, credit_note_id: str) -> dict[str, Any]:
    return (await credit_note_documents(conn, [credit_note_id]))[0]
