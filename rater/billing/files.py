"""Invoice documents: an invoice's PDF made and kept, and the signed links to it (adapter over rater.billing.pdf and
rater.billing.signing).

A final invoice's document is written once and never again: the first download makes it, every later one sends
the same bytes. A draft's is made again at each download, and goes when the draft is refreshed or finalized
(rater.billing.drafts). Each document made sends `invoice.generated`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.tables import ORGANIZATION_DETAILS, invoice_documents, invoices, organizations
from core.db.webhooks import enqueue_webhooks
from core.settings import Settings, load_settings
from rater.billing.pdf import render_invoice
from rater.billing.signing import document_link, link_holds


@cache
def _settings() -> Settings:
    """The process's settings, for the links' address and lifetime and the documents' fonts."""
    return load_settings()


async def document_links(conn: AsyncConnection, invoice_ids: Sequence[str], now_s: float | None = None
                         ) -> dict[str, str]:
    """A freshly signed link for each of these invoices that has a document (one query for a page)."""
    if not invoice_ids:
        return {}
    settings, now_s = _settings(), time.time() if now_s is None else now_s
    rows = await conn.execute(
        select(invoice_documents.c.invoice_id, organizations.c.document_key)
        .join(invoices, invoices.c.id == invoice_documents.c.invoice_id)
        .join(organizations, organizations.c.id == invoices.c.organization_id)
        .where(invoice_documents.c.invoice_id.in_(list(invoice_ids))))
    return {row.invoice_id: document_link(settings.public_url, row.document_key, row.invoice_id, now_s,
                                          settings.document_link_ttl_s) for row in rows}


async def make_document(conn: AsyncConnection, invoice_id: str,
                        invoice_document: Callable[[AsyncConnection, str], Awaitable[dict[str, Any]]]) -> bool:
    """Make the invoice's document in the caller's transaction from what `invoice_document` loads (the API's
    invoice), unless it is final and has one: True when one was written (and `invoice.generated` queued). The
    invoice's row is share-locked first, so it cannot be finalized, refreshed or paid while its document is
    drawn; two downloads at once write a final document once."""
    invoice = (await conn.execute(select(invoices.c.id, invoices.c.organization_id, invoices.c.status)
                                  .where(invoices.c.id == invoice_id).with_for_update(read=True))).one()
    kept = (await conn.execute(select(invoice_documents.c.draft).where(invoice_documents.c.invoice_id == invoice_id))
            ).scalar_one_or_none()
    if kept is False:
        return False
    organization = (await conn.execute(select(organizations.c.name, organizations.c.invoice_footer,
                                              *(organizations.c[name] for name in ORGANIZATION_DETAILS))
                                       .where(organizations.c.id == invoice.organization_id))).one()
    document = await invoice_document(conn, invoice_id)
    content = await asyncio.to_thread(render_invoice, document, dict(organization._mapping),
                                      _settings().document_font_dir)
    draft = invoice.status == "draft"
    written = (await conn.execute(
        insert(invoice_documents).values(invoice_id=invoice_id, content=content, draft=draft)
        .on_conflict_do_update(index_elements=[invoice_documents.c.invoice_id],
                               set_={"content": content, "draft": draft, "created_at": func.now()},
                               where=invoice_documents.c.draft)
        .returning(invoice_documents.c.invoice_id))).scalar_one_or_none()
    if written is None:  # another download wrote the final document first
        return False
    # one webhook per document made (its own id), about the invoice: the webhook sends the invoice
    await enqueue_webhooks(conn, invoice.organization_id, str(uuid.uuid4()), ["invoice.generated"],
                           about_id=invoice_id)
    return True


async def linked_document(conn: AsyncConnection, invoice_id: str, expires: str, signature: str
                          ) -> tuple[bytes | None, Any] | None:
    """What a link names, when its signature holds and it has not expired: (the document, or None when the
    invoice has none now, a draft refreshed since; the invoice's number and status). None when the link does
    not hold, an unknown invoice included: a link tells nothing about what it does not name."""
    try:
        uuid.UUID(invoice_id)
    except ValueError:
        return None
    row = (await conn.execute(
        select(invoice_documents.c.content, invoices.c.number, invoices.c.status, organizations.c.document_key)
        .select_from(invoices)
        .join(organizations, organizations.c.id == invoices.c.organization_id)
        .outerjoin(invoice_documents, invoice_documents.c.invoice_id == invoices.c.id)
        .where(invoices.c.id == invoice_id))).one_or_none()
    if row is None or not link_holds(row.document_key, invoice_id, expires, signature, time.time()):
        return None
    return row.content, row
