"""/api/v1/taxes: taxes a fee carries (core.domain.taxes), and `tax_codes` of customers, plans and charges.

A tax is named by its `code`. PUT changes the keys given; `applied_to_organization: true` makes it one of the
organization's default taxes (those of a fee with no charge, plan or customer taxes). DELETE detaches it from
everything and marks it deleted (its code can then be used again): invoices keep what they billed with it,
drafts bill without it when refreshed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.tables import charge_taxes, customer_taxes, plan_taxes, taxes
from core.db.taxes import LIVE, set_taxes, taxes_by_code
from core.http import JSONResponse, not_found, ok, validation_error
from rater import serializers
from rater.api.common import engine, live_by_code, new_id, org_and_input, page_params, paginate
from rater.inputs import BAD_FORMAT, INVALID, TAKEN, Input


def tax_values(data: Input, *, creating: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if creating or data.given("name"):
        values["name"] = data.text("name", required=True)
    if creating or data.given("code"):
        values["code"] = data.identifier("code", required=True)
    if creating or data.given("rate"):
        values["rate"] = data.percentage("rate", required=True)
    if "description" in data.raw:  # null clears it
        values["description"] = data.text("description", max_length=10_000)
    if data.given("applied_to_organization"):
        values["applied_to_organization"] = data.boolean("applied_to_organization")
    data.check()
    return values


async def create_tax(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "tax")
    values = tax_values(Input(raw), creating=True)
    try:
        async with engine(request).begin() as conn:
            row = (await conn.execute(taxes.insert().returning(*taxes.c).values(
                id=new_id(), organization_id=organization_id, **values))).one()
    except IntegrityError as exc:  # a live tax has this code
        raise validation_error({"code": [TAKEN]}) from exc
    return ok({"tax": serializers.tax(row)})


async def update_tax(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "tax")
    values = tax_values(Input(raw), creating=False)
    try:
        async with engine(request).begin() as conn:
            row = await live_by_code(conn, taxes, organization_id, request.path_params["code"], "tax", for_update=True)
            if values:
                row = (await conn.execute(update(taxes).where(taxes.c.id == row.id).returning(*taxes.c).values(
                    updated_at=func.now(), **values))).one()
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc
    return ok({"tax": serializers.tax(row)})


async def get_tax(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = await live_by_code(conn, taxes, organization_id, request.path_params["code"], "tax")
    return ok({"tax": serializers.tax(row)})


async def delete_tax(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        row = await live_by_code(conn, taxes, organization_id, request.path_params["code"], "tax", for_update=True)
        for links in (customer_taxes, plan_taxes, charge_taxes):
            await conn.execute(delete(links).where(links.c.tax_id == row.id))
        row = (await conn.execute(update(taxes).where(taxes.c.id == row.id).returning(*taxes.c).values(
            deleted_at=func.now(), applied_to_organization=False, updated_at=func.now()))).one()
    return ok({"tax": serializers.tax(row)})


async def list_taxes(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(taxes).where(taxes.c.organization_id == organization_id, LIVE)
             .order_by(taxes.c.name, taxes.c.created_at.desc(), taxes.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"taxes": [serializers.tax(row) for row in rows], "meta": meta})


def read_tax_codes(data: Input, name: str = "tax_codes") -> list[str] | None:
    """`tax_codes` when given (a list of codes: the owner's whole set of taxes; [] removes them all)."""
    raw = data.raw.get(name)
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(code, str) and code for code in raw):
        data.fail(name, BAD_FORMAT)
        return None
    if any(len(code) > 255 or "\x00" in code for code in raw):
        data.fail(name, INVALID)
        return None
    return list(dict.fromkeys(raw))


async def attach_taxes(conn: AsyncConnection, organization_id: str, links: Table, owner_id: str,
                       codes: list[str] | None) -> None:
    """Give the owner the taxes of these codes (None: leave them); 404 tax_not_found for an unknown code."""
    if codes is None:
        return
    found = await taxes_by_code(conn, organization_id, codes)
    if len(found) != len(codes):
        raise not_found("tax")
    await set_taxes(conn, links, owner_id, [found[code].id for code in codes])


ROUTES = [
    Route("/api/v1/taxes", create_tax, methods=["POST"]),
    Route("/api/v1/taxes", list_taxes, methods=["GET"]),
    Route("/api/v1/taxes/{code:path}", get_tax, methods=["GET"]),
    Route("/api/v1/taxes/{code:path}", update_tax, methods=["PUT"]),
    Route("/api/v1/taxes/{code:path}", delete_tax, methods=["DELETE"]),
]
