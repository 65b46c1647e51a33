"""/api/v1/invoices: list, fetch, finalize and refresh (drafts), record a payment status and metadata,
void, download (the PDF, by a signed link), in Lago's shape."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.tables import customers, invoice_applied_taxes, invoices
from core.http import (
    ApiError,
    JSONResponse,
    bad_request,
    not_allowed,
    not_found,
    ok,
    parse_json,
    read_body,
    read_json,
    root_object,
    unavailable,
    validation_error,
)
from rater.api.common import engine, own_id, page_params, paginate
from rater.billing import render
from rater.billing.assemble import PAYMENT_STATUSES, VISIBLE_STATUSES
from rater.billing.documents import (
    applied_taxes_of,
    applied_usage_thresholds,
    customers_by_id,
    invoice_document,
    invoice_metadata_of,
)
from rater.billing.drafts import finalize_draft, refresh_draft
from rater.billing.files import DocumentLinks, NotShown, document_links, linked_document, make_document
from rater.billing.payments import MAX_METADATA, MetadataItem, lock_invoice, set_payment, void
from rater.billing.pdf import FontsMissing
from rater.billing.progressive import PROGRESSIVE_BILLING
from rater.inputs import BAD_FORMAT, INVALID, TAKEN, Input

log = logging.getLogger("meterline.api")


async def _own_invoice(conn: AsyncConnection, organization_id: str, lago_id: str) -> str:
    """A visible invoice of the caller's organization (a closed one is never shown: 404)."""
    return await own_id(conn, invoices, organization_id, lago_id, "invoice", invoices.c.status.in_(VISIBLE_STATUSES))


def links(request: Request) -> DocumentLinks:
    """How this API makes links to invoice documents."""
    return DocumentLinks.of(request.app.state.settings)


def _date_param(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be a date (YYYY-MM-DD)") from exc


def _list_query(request: Request, organization_id: str) -> Any:
    query = select(invoices).where(invoices.c.organization_id == organization_id)
    external_customer_id = request.query_params.get("external_customer_id")
    if external_customer_id:
        query = query.join(customers, customers.c.id == invoices.c.customer_id).where(
            customers.c.external_id == external_customer_id)
    statuses = request.query_params.getlist("statuses[]") or request.query_params.getlist("status")
    if any(s not in VISIBLE_STATUSES for s in statuses):
        raise validation_error({"status": [INVALID]})
    query = query.where(invoices.c.status.in_(statuses or VISIBLE_STATUSES))
    issued_from, issued_to = _date_param(request, "issuing_date_from"), _date_param(request, "issuing_date_to")
    if issued_from is not None:
        query = query.where(invoices.c.issuing_date >= issued_from)
    if issued_to is not None:
        query = query.where(invoices.c.issuing_date <= issued_to)
    return query.order_by(invoices.c.issuing_date.desc(), invoices.c.created_at.desc(), invoices.c.id)


async def list_invoices(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = _list_query(request, organization_id)
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
        by_id = await customers_by_id(conn, {row.customer_id for row in rows})
        applied = await applied_usage_thresholds(
            conn, [row.id for row in rows if row.invoice_type == PROGRESSIVE_BILLING])
        metadata = await invoice_metadata_of(conn, [row.id for row in rows])
        taxes = await applied_taxes_of(conn, invoice_applied_taxes.c.invoice_id, [row.id for row in rows])
        found = await document_links(conn, [row.id for row in rows], links(request))
    return ok({"invoices": [render.invoice(row, by_id[row.customer_id], applied.get(row.id, ()),
                                           metadata.get(row.id, ()), taxes[row.id], found.get(row.id, ""))
                            for row in rows],
               "meta": meta})


async def get_invoice(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        return ok({"invoice": await invoice_document(conn, invoice_id, links(request))})


async def finalize_invoice(request: Request) -> JSONResponse:
    """Finalize a draft now (its fees refreshed first); a finalized invoice is returned unchanged."""
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        await finalize_draft(conn, invoice_id)
        return ok({"invoice": await invoice_document(conn, invoice_id, links(request))})


async def refresh_invoice(request: Request) -> JSONResponse:
    """Recompute a draft's usage fees from the archive; a finalized invoice is returned unchanged."""
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        await refresh_draft(conn, invoice_id)
        return ok({"invoice": await invoice_document(conn, invoice_id, links(request))})


VOID_OPTIONS = ("generate_credit_note", "refund_amount", "credit_amount")  # Lago's, not implemented


def read_update(raw: Any) -> tuple[str | None, list[MetadataItem] | None]:
    """`{"invoice": {...}}` of a PUT: the payment status and the metadata items, each when given."""
    given = Input(raw)
    payment_status = given.choice("payment_status", PAYMENT_STATUSES)
    items = None
    if raw.get("metadata") is not None:
        items = _metadata_items(given, raw["metadata"])
    given.check()
    return payment_status, items


def _metadata_items(given: Input, raw: Any) -> list[MetadataItem] | None:
    """Up to MAX_METADATA `{id?, key, value}`: a key of up to 20 characters, once; a value up to 140."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        given.fail("metadata", BAD_FORMAT)
        return None
    if len(raw) > MAX_METADATA:
        given.fail("metadata", "invalid_count")
        return None
    items = []
    for raw_item in raw:
        item = Input(raw_item)
        id_ = item.identifier("id", max_length=36)
        key = item.text("key", required=True, max_length=20)
        value = item.text("value", required=True, max_length=140)
        for name, codes in item.errors.items():
            for code in codes:
                given.fail(f"metadata.{name}", code)
        if key is not None and value is not None:
            items.append(MetadataItem(id_, key, value))
    if len({item.key for item in items}) < len(items):
        given.fail("metadata.key", TAKEN)
    return items


async def update_invoice(request: Request) -> JSONResponse:
    """Record a payment status and/or replace the metadata (Lago's rules: neither changes a draft; a voided
    invoice's payment status no longer changes)."""
    organization_id = await authenticate(request)
    body = await read_json(request, request.app.state.max_body_bytes)
    payment_status, items = read_update(root_object(body, "invoice"))
    async with engine(request).begin() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        invoice = await lock_invoice(conn, invoice_id)
        changes_status = payment_status is not None and payment_status != invoice.payment_status
        if invoice.status == "draft" and items is not None:
            raise not_allowed("metadata_on_draft_invoice")
        if invoice.status == "draft" and changes_status:
            raise not_allowed("payment_status_update_on_draft_invoice")
        if invoice.status == "voided" and changes_status:
            raise not_allowed("payment_status_update_on_voided_invoice")
        await set_payment(conn, invoice, payment_status, items)
        return ok({"invoice": await invoice_document(conn, invoice_id, links(request))})


async def void_invoice(request: Request) -> JSONResponse:
    """Void a final, unpaid invoice (405 `not_voidable` otherwise). Lago's options to issue a credit note or
    a refund with it are not implemented: refused when given."""
    organization_id = await authenticate(request)
    body = await read_body(request, request.app.state.max_body_bytes)
    if body.strip():
        options = Input(parse_json(body))
        options.unsupported(*VOID_OPTIONS)
        options.check()
    async with engine(request).begin() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        if not await void(conn, await lock_invoice(conn, invoice_id)):
            raise not_allowed("not_voidable")
        return ok({"invoice": await invoice_document(conn, invoice_id, links(request))})


async def download_invoice(request: Request) -> JSONResponse:
    """Draw the invoice's PDF unless it has one (a final invoice's is kept for ever, a draft's until it is refreshed
    or finalized) and answer the invoice with `file_url`, a signed link to it that works without the API key
    until it expires."""
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
    try:
        await make_document(engine(request), invoice_id, links(request), request.app.state.settings.document_font_dir,
                            invoice_document)
    except NotShown as exc:
        raise not_found("invoice") from exc
    except FontsMissing as exc:
        log.error("invoice %s: no document: %s", invoice_id, exc)
        raise unavailable("invoice documents cannot be written: their fonts are not installed") from exc
    async with engine(request).connect() as conn:
        return ok({"invoice": await invoice_document(conn, invoice_id, links(request))})


async def invoice_pdf(request: Request) -> Response:
    """An invoice's PDF by its signed link, without an API key: 403 `invalid_signature` for a link altered,
    expired or naming no invoice; 404 when the invoice has no document now (a draft refreshed since)."""
    params = request.query_params
    async with engine(request).connect() as conn:
        found = await linked_document(conn, request.path_params["lago_id"], params.get("expires", ""),
                                      params.get("signature", ""))
    if found is None:
        raise ApiError(403, {"error": "Forbidden", "code": "invalid_signature"})
    content, invoice = found
    if content is None:
        raise not_found("document")
    final = invoice.status != "draft"
    name = quote(f"{invoice.number}.pdf")  # a number may hold any letter; an HTTP header only latin-1
    return Response(content, media_type="application/pdf", headers={
        "Content-Disposition": f"inline; filename=\"invoice.pdf\"; filename*=UTF-8''{name}",
        "Cache-Control": "private, max-age=86400, immutable" if final else "private, no-store"})


ROUTES = [
    Route("/api/v1/invoices", list_invoices, methods=["GET"]),
    Route("/api/v1/invoices/{lago_id}", get_invoice, methods=["GET"]),
    Route("/api/v1/invoices/{lago_id}", update_invoice, methods=["PUT"]),
    Route("/api/v1/invoices/{lago_id}/void", void_invoice, methods=["POST"]),
    Route("/api/v1/invoices/{lago_id}/finalize", finalize_invoice, methods=["PUT"]),
    Route("/api/v1/invoices/{lago_id}/refresh", refresh_invoice, methods=["PUT"]),
    Route("/api/v1/invoices/{lago_id}/download", download_invoice, methods=["POST"]),
    Route("/api/v1/invoices/{lago_id}/document.pdf", invoice_pdf, methods=["GET"]),
]
