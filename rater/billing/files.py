"""Invoice documents: an invoice's PDF made and kept, and the signed links to it (adapter over rater.billing.pdf and
rater.billing.signing).

A document is drawn once and then kept: a final invoice's for ever (every later download sends the same bytes), a
draft's until the draft is refreshed or finalized (rater.billing.drafts deletes it then). Each document drawn
sends `invoice.generated`. It is drawn outside any transaction, from the invoice as it was read; it is kept only if
the invoice has not changed since (else it is drawn again).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db.tables import ORGANIZATION_DETAILS, invoice_documents, invoices, organizations
from core.db.webhooks import enqueue_webhooks
from core.http import canonical_uuid
from core.settings import Settings
from rater.billing.assemble import VISIBLE_STATUSES
from rater.billing.pdf import render_invoice
from rater.billing.signing import document_link, document_signature, link_holds

ATTEMPTS = 3  # draws of one download, when the invoice keeps changing while it is drawn
_DRAWING = asyncio.Semaphore(2)  # documents drawn at once by one process (each holds the interpreter ~50 ms)


@dataclass(frozen=True)
class DocumentLinks:
    """How links to invoice documents are made: the API's public address and how long a link works."""

    public_url: str
    ttl_s: int

    @classmethod
    def of(cls, settings: Settings) -> DocumentLinks:
        return cls(settings.public_url, settings.document_link_ttl_s)


InvoiceLoader = Callable[[AsyncConnection, str, DocumentLinks], Awaitable[dict[str, Any]]]


async def document_links(conn: AsyncConnection, invoice_ids: Sequence[str], links: DocumentLinks,
                         now_s: float | None = None) -> dict[str, str]:
    """A freshly signed link for each of these invoices that has a document (one query for a page)."""
    if not invoice_ids:
        return {}
    now_s = time.time() if now_s is None else now_s
    rows = await conn.execute(
        select(invoice_documents.c.invoice_id, organizations.c.document_key)
        .join(invoices, invoices.c.id == invoice_documents.c.invoice_id)
        .join(organizations, organizations.c.id == invoices.c.organization_id)
        .where(invoice_documents.c.invoice_id.in_(list(invoice_ids))))
    return {row.invoice_id: document_link(links.public_url, row.document_key, row.invoice_id, now_s, links.ttl_s)
            for row in rows}


class NotShown(LookupError):
    """The invoice is not one the API shows (a draft closed meanwhile)."""


async def make_document(engine: AsyncEngine, invoice_id: str, links: DocumentLinks, font_dir: Path,
                        invoice_document: InvoiceLoader) -> bool:
    """Draw the invoice's document from what `invoice_document` loads (the API's invoice) unless it has one: True
    when one was kept (and `invoice.generated` queued). NotShown for an invoice the API does not show. Two
    downloads at once keep one document."""
    for _ in range(ATTEMPTS):
        async with engine.connect() as conn:
            if await _kept(conn, invoice_id):
                return False
            document = await invoice_document(conn, invoice_id, links)
            if document["status"] not in VISIBLE_STATUSES:
                raise NotShown(invoice_id)
            organization = (await conn.execute(
                select(organizations.c.name, organizations.c.invoice_footer,
                       *(organizations.c[name] for name in ORGANIZATION_DETAILS))
                .join(invoices, invoices.c.organization_id == organizations.c.id)
                .where(invoices.c.id == invoice_id))).one()
            drawn_from = (await conn.execute(select(invoices.c.updated_at).where(invoices.c.id == invoice_id))
                          ).scalar_one()
        async with _DRAWING:
            content = await asyncio.to_thread(render_invoice, document, dict(organization._mapping), font_dir)
        async with engine.begin() as conn:
            # share-locked: not finalized, refreshed or paid while it is kept
            invoice = (await conn.execute(select(invoices.c.organization_id, invoices.c.status,
                                                 invoices.c.updated_at)
                                          .where(invoices.c.id == invoice_id).with_for_update(read=True))).one()
            if invoice.updated_at != drawn_from:
                continue  # it changed while it was drawn: draw it again
            kept = (await conn.execute(
                insert(invoice_documents).values(invoice_id=invoice_id, content=content,
                                                 draft=invoice.status == "draft")
                .on_conflict_do_nothing(index_elements=[invoice_documents.c.invoice_id])
                .returning(invoice_documents.c.invoice_id))).scalar_one_or_none()
            if kept is None:  # another download kept one first
                return False
            # one webhook per document kept (its own id), about the invoice: the webhook sends the invoice
            await enqueue_webhooks(conn, invoice.organization_id, str(uuid.uuid4()), ["invoice.generated"],
                                   about_id=invoice_id)
            return True
    raise RuntimeError(f"invoice {invoice_id} changed {ATTEMPTS} times while its document was drawn")


async def _kept(conn: AsyncConnection, invoice_id: str) -> bool:
    return (await conn.execute(select(invoice_documents.c.invoice_id)
                               .where(invoice_documents.c.invoice_id == invoice_id))).first() is not None


async def linked_document(conn: AsyncConnection, invoice_id: str, expires: str, signature: str
                          ) -> tuple[bytes | None, Any] | None:
    """What a link names, when its signature holds and it has not expired: (the document, or None when the
    invoice has none now, a draft refreshed since; the invoice's number and status). None when the link does
    not hold, an unknown invoice included: a link tells nothing about what it does not name (the same signature
    is computed either way)."""
    row = (await conn.execute(
        select(invoice_documents.c.content, invoices.c.number, invoices.c.status, organizations.c.document_key)
        .select_from(invoices)
        .join(organizations, organizations.c.id == invoices.c.organization_id)
        .outerjoin(invoice_documents, invoice_documents.c.invoice_id == invoices.c.id)
        .where(invoices.c.id == invoice_id))).one_or_none() if canonical_uuid(invoice_id) == invoice_id else None
    if row is None:
        document_signature("0" * 64, invoice_id, 0)  # as long as checking a real one
        return None
    if not link_holds(row.document_key, invoice_id, expires, signature, time.time()):
        return None
    return row.content, row
