"""/api/v1/customers — POST is an upsert on external_id that changes only the keys given."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from meterline.apikeys import authenticate
from meterline.http import JSONResponse, not_found, ok
from rater import serializers
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.inputs import Input
from rater.serializers import _CUSTOMER_ATTRIBUTES
from rater.tables import customers

_EXTRA = (*_CUSTOMER_ATTRIBUTES, "account_type", "customer_type")


def customer_values(data: Input) -> dict[str, Any]:
    """Only the keys the client gave (non-null), validated."""
    values: dict[str, Any] = {"external_id": data.text("external_id", required=True)}
    if data.given("name"):
        values["name"] = data.text("name")
    if data.given("email"):
        values["email"] = data.text("email")
    if data.given("currency"):
        values["currency"] = data.currency("currency")
    if data.given("timezone"):
        values["timezone"] = data.timezone("timezone")
    billing = data.raw.get("billing_configuration")
    grace = billing.get("invoice_grace_period") if isinstance(billing, dict) else None
    if data.given("invoice_grace_period") or grace is not None:
        data.raw.setdefault("invoice_grace_period", grace)
        values["invoice_grace_period"] = data.integer("invoice_grace_period")
    data.check()
    values["attributes"] = {k: data.raw[k] for k in _EXTRA if data.raw.get(k) is not None}
    return values


async def upsert_customer(conn: AsyncConnection, organization_id: str, values: dict[str, Any]) -> Any:
    attributes = values.pop("attributes", {})
    statement = insert(customers).values(id=new_id(), organization_id=organization_id, attributes=attributes,
                                         **values)
    updates = {k: statement.excluded[k] for k in values if k != "external_id"}
    updates["attributes"] = customers.c.attributes.op("||")(statement.excluded.attributes)
    statement = statement.on_conflict_do_update(constraint="uq_customers_org_external_id", set_=updates)
    return (await conn.execute(statement.returning(*customers.c))).one()


async def create_customer(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "customer")
    values = customer_values(Input(raw))
    async with engine(request).begin() as conn:
        row = await upsert_customer(conn, organization_id, values)
    return ok({"customer": serializers.customer(row)})


async def get_customer(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = (await conn.execute(select(customers).where(
            customers.c.organization_id == organization_id,
            customers.c.external_id == request.path_params["external_id"],
        ))).one_or_none()
    if row is None:
        raise not_found("customer")
    return ok({"customer": serializers.customer(row)})


async def list_customers(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(customers).where(customers.c.organization_id == organization_id)
             .order_by(customers.c.created_at.desc(), customers.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"customers": [serializers.customer(r) for r in rows], "meta": meta})


ROUTES = [
    Route("/api/v1/customers", create_customer, methods=["POST"]),
    Route("/api/v1/customers", list_customers, methods=["GET"]),
    Route("/api/v1/customers/{external_id}", get_customer, methods=["GET"]),
]
