"""/api/v1/credit_notes: the credit notes plan changes and terminations create (list, fetch), and
voiding what is left of one (`PUT /credit_notes/{lago_id}/void`: its balance goes to 0, status voided;
what invoices took from it before stays taken)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.locks import lock_customers
from core.db.tables import credit_notes, customers
from core.http import JSONResponse, not_allowed, ok
from rater.api.common import engine, own_id, page_params, paginate
from rater.billing.documents import credit_note_document, credit_note_documents


async def _own_note(conn: AsyncConnection, organization_id: str, lago_id: str) -> str:
    return await own_id(conn, credit_notes, organization_id, lago_id, "credit_note")


async def list_credit_notes(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = select(credit_notes.c.id).where(credit_notes.c.organization_id == organization_id)
    external_customer_id = request.query_params.get("external_customer_id")
    if external_customer_id:
        query = query.join(customers, customers.c.id == credit_notes.c.customer_id).where(
            customers.c.external_id == external_customer_id)
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query.order_by(credit_notes.c.created_at.desc(), credit_notes.c.id),
                                    page, per_page)
        notes = await credit_note_documents(conn, [row.id for row in rows])
    return ok({"credit_notes": notes, "meta": meta})


async def get_credit_note(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        note_id = await _own_note(conn, organization_id, request.path_params["lago_id"])
        return ok({"credit_note": await credit_note_document(conn, note_id)})


async def void_credit_note(request: Request) -> JSONResponse:
    """Void the remaining balance, under the customer's lock (a billing run taking it waits, or went first)."""
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        note_id = await _own_note(conn, organization_id, request.path_params["lago_id"])
        customer_id = (await conn.execute(select(credit_notes.c.customer_id).where(credit_notes.c.id == note_id))
                       ).scalar_one()
        await lock_customers(conn, [customer_id])
        status = (await conn.execute(select(credit_notes.c.credit_status).where(credit_notes.c.id == note_id))
                  ).scalar_one()
        if status != "available":  # consumed or voided already: nothing left to void (Lago's answer)
            raise not_allowed("no_voidable_amount")
        await conn.execute(update(credit_notes).where(credit_notes.c.id == note_id).values(
            credit_status="voided", balance_amount_cents=0, voided_at=func.now(), updated_at=func.now()))
        return ok({"credit_note": await credit_note_document(conn, note_id)})


ROUTES = [
    Route("/api/v1/credit_notes", list_credit_notes, methods=["GET"]),
    Route("/api/v1/credit_notes/{lago_id}", get_credit_note, methods=["GET"]),
    Route("/api/v1/credit_notes/{lago_id}/void", void_credit_note, methods=["PUT"]),
]
