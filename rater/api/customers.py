"""/api/v1/customers — POST is an upsert on external_id that changes only the keys given.

DELETE marks the customer deleted (its invoices keep referring to it) and terminates its
subscriptions; the external_id can then be used for a new customer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.tables import customers, subscriptions
from core.http import JSONResponse, not_found, ok
from rater import serializers
from rater.activation import terminate
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.inputs import MAX_DAYS, Input
from rater.serializers import CUSTOMER_ATTRIBUTES

_EXTRA = (*CUSTOMER_ATTRIBUTES, "account_type", "customer_type")


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
    if data.given("invoice_grace_period"):
        values["invoice_grace_period"] = data.integer("invoice_grace_period", maximum=MAX_DAYS)
    elif isinstance(billing, dict) and billing.get("invoice_grace_period") is not None:
        nested = Input(billing)  # where the official client puts it
        values["invoice_grace_period"] = nested.integer("invoice_grace_period", maximum=MAX_DAYS)
        for code in nested.errors.get("invoice_grace_period", []):
            data.fail("billing_configuration.invoice_grace_period", code)
    if data.given("account_type"):
        data.choice("account_type", ("customer", "partner"))
    if data.given("customer_type"):
        data.choice("customer_type", ("company", "individual"))
    data.check()
    values["attributes"] = {k: data.raw[k] for k in _EXTRA if data.raw.get(k) is not None}
    return values


async def upsert_customer(conn: AsyncConnection, organization_id: str, values: dict[str, Any]) -> Any:
    values = dict(values)
    attributes = values.pop("attributes", {})
    statement = insert(customers).values(id=new_id(), organization_id=organization_id, attributes=attributes,
                                         **values)
    updates: dict[str, Any] = {k: statement.excluded[k] for k in values if k != "external_id"}
    updates["attributes"] = customers.c.attributes.op("||")(statement.excluded.attributes)
    updates["updated_at"] = func.now()
    statement = statement.on_conflict_do_update(
        index_elements=["organization_id", "external_id"], index_where=text("deleted_at IS NULL"),
        set_=updates)
    return (await conn.execute(statement.returning(*customers.c))).one()


async def live_customer(conn: AsyncConnection, organization_id: str, external_id: str) -> Any:
    return (await conn.execute(select(customers).where(
        customers.c.organization_id == organization_id, customers.c.external_id == external_id,
        customers.c.deleted_at.is_(None),
    ))).one_or_none()


async def create_customer(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "customer")
    values = customer_values(Input(raw))
    async with engine(request).begin() as conn:
        row = await upsert_customer(conn, organization_id, values)
    return ok({"customer": serializers.customer(row)})


async def get_customer(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = await live_customer(conn, organization_id, request.path_params["external_id"])
    if row is None:
        raise not_found("customer")
    return ok({"customer": serializers.customer(row)})


async def delete_customer(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    now = datetime.now(UTC)
    async with engine(request).begin() as conn:
        row = await live_customer(conn, organization_id, request.path_params["external_id"])
        if row is None:
            raise not_found("customer")
        await terminate(conn, now, subscriptions.c.customer_id == row.id)
        row = (await conn.execute(update(customers).where(customers.c.id == row.id)
                                  .values(deleted_at=now, updated_at=now).returning(*customers.c))).one()
    return ok({"customer": serializers.customer(row)})


async def list_customers(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(customers)
             .where(customers.c.organization_id == organization_id, customers.c.deleted_at.is_(None))
             .order_by(customers.c.created_at.desc(), customers.c.id))
    params = request.query_params
    if params.getlist("currencies[]"):
        query = query.where(customers.c.currency.in_(params.getlist("currencies[]")))
    if params.getlist("account_type[]"):
        query = query.where(func.coalesce(customers.c.attributes["account_type"].astext, "customer")
                            .in_(params.getlist("account_type[]")))
    if params.get("search_term"):
        escaped = params["search_term"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(or_(customers.c.external_id.ilike(pattern), customers.c.name.ilike(pattern),
                                customers.c.email.ilike(pattern)))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"customers": [serializers.customer(r) for r in rows], "meta": meta})


ROUTES = [
    Route("/api/v1/customers", create_customer, methods=["POST"]),
    Route("/api/v1/customers", list_customers, methods=["GET"]),
    Route("/api/v1/customers/{external_id}", get_customer, methods=["GET"]),
    Route("/api/v1/customers/{external_id}", delete_customer, methods=["DELETE"]),
]
