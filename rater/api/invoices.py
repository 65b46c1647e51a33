"""/api/v1/invoices: list, fetch, finalize and refresh (drafts), in Lago's shape."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.tables import customers, invoices
from core.http import JSONResponse, bad_request, ok, validation_error
from rater.api.common import engine, own_id, page_params, paginate
from rater.billing import render
from rater.billing.assemble import VISIBLE_STATUSES
from rater.billing.documents import applied_usage_thresholds, customers_by_id, invoice_document
from rater.billing.drafts import finalize_draft, refresh_draft
from rater.billing.progressive import PROGRESSIVE_BILLING
from rater.inputs import INVALID


async def _own_invoice(conn: AsyncConnection, organization_id: str, lago_id: str) -> str:
    """A visible invoice of the caller's organization (a closed one is never shown: 404)."""
    return await own_id(conn, invoices, organization_id, lago_id, "invoice", invoices.c.status.in_(VISIBLE_STATUSES))


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
    return ok({"invoices": [render.invoice(row, by_id[row.customer_id], applied.get(row.id, ())) for row in rows],
               "meta": meta})


async def get_invoice(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        return ok({"invoice": await invoice_document(conn, invoice_id)})


async def finalize_invoice(request: Request) -> JSONResponse:
    """Finalize a draft now (its fees refreshed first); a finalized invoice is returned unchanged."""
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        await finalize_draft(conn, invoice_id)
        return ok({"invoice": await invoice_document(conn, invoice_id)})


async def refresh_invoice(request: Request) -> JSONResponse:
    """Recompute a draft's usage fees from the archive; a finalized invoice is returned unchanged."""
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        invoice_id = await _own_invoice(conn, organization_id, request.path_params["lago_id"])
        await refresh_draft(conn, invoice_id)
        return ok({"invoice": await invoice_document(conn, invoice_id)})


ROUTES = [
    Route("/api/v1/invoices", list_invoices, methods=["GET"]),
    Route("/api/v1/invoices/{lago_id}", get_invoice, methods=["GET"]),
    Route("/api/v1/invoices/{lago_id}/finalize", finalize_invoice, methods=["PUT"]),
    Route("/api/v1/invoices/{lago_id}/refresh", refresh_invoice, methods=["PUT"]),
]
