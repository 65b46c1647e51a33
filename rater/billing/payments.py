"""What happens to an invoice after it is final: its payment status and metadata (`PUT /invoices/{lago_id}`),
voiding it, and marking it overdue once its due date passed unpaid. Each change writes its webhook in
the same transaction (the outbox, core.db.webhooks), so it is sent once, and only if the change holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.clocks import on_clock
from core.db.tables import customers, invoice_metadata, invoice_payment_updates, invoices
from core.db.webhooks import Announcement, enqueue_announcements, enqueue_webhooks
from rater.billing.assemble import voidable

MAX_METADATA = 5  # items per invoice, as Lago


@dataclass(frozen=True)
class MetadataItem:
    id: str | None  # an existing item's lago_id to update it; none to add one
    key: str
    value: str


async def lock_invoice(conn: AsyncConnection, invoice_id: str) -> Any:
    """The invoice's row lock, until the transaction ends, and what a payment or a void reads of it: a
    payment, a void and the overdue mark of one invoice happen one after the other."""
    return (await conn.execute(select(invoices.c.id, invoices.c.organization_id, invoices.c.status,
                                      invoices.c.payment_status)
                               .where(invoices.c.id == invoice_id).with_for_update())).one()


async def set_payment(conn: AsyncConnection, invoice: Any, payment_status: str | None,
                      items: Sequence[MetadataItem] | None) -> None:
    """Record a payment status and/or replace the metadata (the items given stay, updated by id or key,
    the others go) of an invoice locked by `lock_invoice`. A payment that succeeded ends `payment_overdue`;
    `invoice.payment_status_updated` is sent when the status changed."""
    if payment_status is not None and payment_status != invoice.payment_status:
        changes: dict[str, object] = {"payment_status": payment_status, "updated_at": func.now()}
        if payment_status == "succeeded":
            changes["payment_overdue"] = False
        await conn.execute(update(invoices).where(invoices.c.id == invoice.id).values(**changes))
        update_id = str(uuid.uuid4())  # the webhook's object: one webhook per change, about the invoice
        await conn.execute(invoice_payment_updates.insert().values(
            id=update_id, invoice_id=invoice.id, payment_status=payment_status,
            previous_payment_status=invoice.payment_status))
        await enqueue_webhooks(conn, invoice.organization_id, update_id, ["invoice.payment_status_updated"],
                               about_id=invoice.id)
    if items is not None:
        await _replace_metadata(conn, invoice.id, items)


async def _replace_metadata(conn: AsyncConnection, invoice_id: str, items: Sequence[MetadataItem]) -> None:
    """The invoice's metadata becomes `items`: one given with the id (or else the key) of an existing item
    keeps that item's id and creation time. Written afresh, so keys moving between items never collide."""
    existing = {row.id: row for row in await conn.execute(
        select(invoice_metadata).where(invoice_metadata.c.invoice_id == invoice_id))}
    by_key = {row.key: row for row in existing.values()}
    await conn.execute(delete(invoice_metadata).where(invoice_metadata.c.invoice_id == invoice_id))
    if items:
        rows, used = [], set()
        for item in items:
            before = existing.get(item.id or "") or by_key.get(item.key)
            if before is not None and before.id in used:  # another item kept it already (by its id)
                before = None
            if before is not None:
                used.add(before.id)
            rows.append({"id": before.id if before else str(uuid.uuid4()), "invoice_id": invoice_id,
                         "key": item.key, "value": item.value,
                         "created_at": before.created_at if before else func.now(), "updated_at": func.now()})
        await conn.execute(invoice_metadata.insert().values(rows))


async def void(conn: AsyncConnection, invoice: Any) -> bool:
    """Void a final unpaid invoice locked by `lock_invoice`; False when it is not voidable. Nothing is due on
    it any more; the periods it billed stay billed (as Lago: a voided invoice is not re-billed) and the
    credit notes it used stay used. `invoice.voided` is sent."""
    if not voidable(invoice.status, invoice.payment_status):
        return False
    await conn.execute(update(invoices).where(invoices.c.id == invoice.id).values(
        status="voided", voided_at=func.now(), payment_overdue=False, updated_at=func.now()))
    await enqueue_webhooks(conn, invoice.organization_id, invoice.id, ["invoice.voided"])
    return True


async def mark_overdue(conn: AsyncConnection, today: date, organization_id: str | None = None,
                       clock_id: str | None = None) -> int:
    """Mark the final invoices whose due date is before `today` (UTC, as Lago) and that are not paid, once
    each, with their `invoice.payment_overdue` webhook; how many. Only the invoices of the customers of test
    clock `clock_id` (None: of the customers on no clock). Skips invoices locked by a payment or a void in
    progress (the next round sees what it left)."""
    candidates = select(invoices.c.id).where(
        invoices.c.status == "finalized", invoices.c.payment_status != "succeeded",
        invoices.c.payment_overdue.is_(False), invoices.c.payment_due_date < today,
        invoices.c.customer_id.in_(select(customers.c.id).where(on_clock(clock_id))))
    if organization_id is not None:
        candidates = candidates.where(invoices.c.organization_id == organization_id)
    marked = (await conn.execute(update(invoices).where(
        invoices.c.id.in_(candidates.with_for_update(skip_locked=True).scalar_subquery()),
    ).values(payment_overdue=True, updated_at=func.now()).returning(invoices.c.id, invoices.c.organization_id))).all()
    await enqueue_announcements(conn, [Announcement(row.organization_id, row.id, "invoice.payment_overdue")
                                       for row in marked])
    return len(marked)
