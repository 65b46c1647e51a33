"""/api/v1/customers — POST is an upsert on external_id that changes only the keys given.

DELETE marks the customer deleted (its invoices keep referring to it) and terminates its
subscriptions; the external_id can then be used for a new customer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.clocks import now_for
from core.db.locks import lock_customer_numbering
from core.db.tables import customer_taxes, customers, organizations, subscriptions, test_clocks
from core.db.taxes import taxes_of
from core.http import JSONResponse, not_found, ok, validation_error
from rater import serializers
from rater.activation import terminate
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.api.taxes import attach_taxes, read_tax_codes
from rater.inputs import BAD_FORMAT, MAX_DAYS, NOT_SUPPORTED, Input
from rater.serializers import CUSTOMER_ATTRIBUTES

# Descriptive attributes, stored and shown as given (text): they change nothing that is billed.
TEXT_ATTRIBUTES = tuple(name for name in CUSTOMER_ATTRIBUTES if name != "billing_entity_code")
ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "zipcode", "state", "country")
# Lago features meterline does not have: a value would be stored and shown while billing ignored it.
UNSUPPORTED = ("billing_entity_code", "metadata", "integration_customers", "invoice_custom_section_codes")
# billing_configuration keys other than invoice_grace_period: payment providers and document settings
UNSUPPORTED_BILLING = ("payment_provider", "payment_provider_code", "provider_customer_id", "sync",
                       "sync_with_provider", "document_locale", "provider_payment_methods",
                       "subscription_invoice_issuing_date_anchor", "subscription_invoice_issuing_date_adjustment")


def _grace_period(data: Input, values: dict[str, Any]) -> None:
    """`invoice_grace_period` at the root or in `billing_configuration` (where the official client puts it)."""
    billing = data.raw.get("billing_configuration")
    if billing is not None and not isinstance(billing, dict):
        data.fail("billing_configuration", BAD_FORMAT)
        billing = None
    nested = Input(billing or {})
    nested.unsupported(*UNSUPPORTED_BILLING)
    if data.given("invoice_grace_period"):
        values["invoice_grace_period"] = data.integer("invoice_grace_period", maximum=MAX_DAYS)
    elif nested.given("invoice_grace_period"):
        values["invoice_grace_period"] = nested.integer("invoice_grace_period", maximum=MAX_DAYS)
    for name, codes in nested.errors.items():
        for code in codes:
            data.fail(f"billing_configuration.{name}", code)


def _shipping_address(data: Input) -> dict[str, str] | None:
    raw = data.raw.get("shipping_address")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        data.fail("shipping_address", BAD_FORMAT)
        return None
    address = Input(raw)
    found = {name: address.text(name) for name in ADDRESS_FIELDS if address.given(name)}
    for name, codes in address.errors.items():
        for code in codes:
            data.fail(f"shipping_address.{name}", code)
    return {name: value for name, value in found.items() if value is not None}


def customer_values(data: Input) -> dict[str, Any]:
    """Only the keys the client gave (non-null), validated; unknown keys are ignored, as Lago does."""
    values: dict[str, Any] = {"external_id": data.identifier("external_id", required=True)}
    if data.given("name"):
        values["name"] = data.text("name")
    if data.given("email"):
        values["email"] = data.text("email")
    if data.given("currency"):
        values["currency"] = data.currency("currency")
    if data.given("timezone"):
        values["timezone"] = data.timezone("timezone")
    _grace_period(data, values)
    attributes: dict[str, Any] = {name: data.text(name) for name in TEXT_ATTRIBUTES if data.given(name)}
    for name, options in (("account_type", ("customer", "partner")), ("customer_type", ("company", "individual"))):
        if data.given(name):
            attributes[name] = data.choice(name, options)
    if attributes.get("account_type") == "partner":  # a partner is self-billed in Lago: meterline has no self-billing
        data.fail("account_type", NOT_SUPPORTED)
    address = _shipping_address(data)
    if address:
        attributes["shipping_address"] = address
    if data.given("net_payment_term"):  # days from an invoice's issuing date to its payment due date
        values["net_payment_term"] = data.integer("net_payment_term", maximum=MAX_DAYS)
    # `skip`: a $0 invoice is closed instead of finalized (rater.billing.assemble.final_status)
    zero_amount = data.choice("finalize_zero_amount_invoice", ("inherit", "finalize", "skip"))
    if zero_amount is not None:
        attributes["finalize_zero_amount_invoice"] = zero_amount
    if "test_clock_id" in data.raw:  # null takes it off its clock (only before its first subscription)
        values["test_clock_id"] = data.uuid("test_clock_id") if data.raw["test_clock_id"] is not None else None
    data.unsupported(*UNSUPPORTED)
    tax_codes = read_tax_codes(data)
    data.check()
    values["attributes"] = attributes
    values["tax_codes"] = tax_codes
    return values


def customer_slug(organization_name: str, organization_id: str, sequential_id: int) -> str:
    """Lago's customer slug: the organization's document prefix (the first three letters of its name and
    the last four characters of its id, uppercased) and the customer's number on at least three digits."""
    return f"{organization_name[:3].upper()}-{organization_id[-4:].upper()}-{sequential_id:03d}"


async def _next_number(conn: AsyncConnection, organization_id: str) -> tuple[int, str]:
    """The organization's next customer sequential_id and its slug (numbering lock held to commit)."""
    await lock_customer_numbering(conn, organization_id)
    name = (await conn.execute(select(organizations.c.name).where(organizations.c.id == organization_id))
            ).scalar_one()
    sequential_id = (await conn.execute(select(func.coalesce(func.max(customers.c.sequential_id), 0) + 1)
                                        .where(customers.c.organization_id == organization_id))).scalar_one()
    return sequential_id, customer_slug(name, organization_id, sequential_id)


async def upsert_customer(conn: AsyncConnection, organization_id: str, values: dict[str, Any]) -> Any:
    """Create the customer (numbered) or change the keys given of the live one with that external_id, and
    its taxes when `tax_codes` is given."""
    values = dict(values)
    attributes = values.pop("attributes", {})
    tax_codes = values.pop("tax_codes", None)
    existing = await live_customer(conn, organization_id, values["external_id"], for_update=True)
    if "test_clock_id" in values:
        await _check_clock(conn, organization_id, existing, values["test_clock_id"])
    sequential_id, slug = (existing.sequential_id, existing.slug) if existing is not None else \
        await _next_number(conn, organization_id)
    statement = insert(customers).values(id=new_id(), organization_id=organization_id, attributes=attributes,
                                         sequential_id=sequential_id, slug=slug, **values)
    updates: dict[str, Any] = {k: statement.excluded[k] for k in values if k != "external_id"}
    updates["attributes"] = customers.c.attributes.op("||")(statement.excluded.attributes)
    updates["updated_at"] = func.now()
    statement = statement.on_conflict_do_update(
        index_elements=["organization_id", "external_id"], index_where=text("deleted_at IS NULL"),
        set_=updates)
    row = (await conn.execute(statement.returning(*customers.c))).one()
    await attach_taxes(conn, organization_id, customer_taxes, row.id, tax_codes)
    return row


async def _check_clock(conn: AsyncConnection, organization_id: str, existing: Any, clock_id: str | None) -> None:
    """A customer goes on a test clock (or off one) when it is created or before its first subscription: a
    customer with history on the wall clock cannot be moved in time, nor one with history on a clock out of it.
    404 `test_clock_not_found` for a clock of no one, another organization's, or deleted."""
    if clock_id is not None and (await conn.execute(select(test_clocks.c.id).where(  # FOR SHARE: a delete waits
            test_clocks.c.id == clock_id, test_clocks.c.organization_id == organization_id,
            test_clocks.c.deleted_at.is_(None)).with_for_update(read=True))).first() is None:
        raise not_found("test_clock")
    if existing is None or existing.test_clock_id == clock_id:
        return
    history = (await conn.execute(select(subscriptions.c.id).where(subscriptions.c.customer_id == existing.id)
                                  .limit(1))).first()
    if history is not None:
        raise validation_error({"test_clock_id": ["customer_has_history"]})


async def customer_document(conn: AsyncConnection, row: Any) -> dict[str, Any]:
    return serializers.customer(row, (await taxes_of(conn, customer_taxes, [row.id]))[row.id])


async def live_customer(conn: AsyncConnection, organization_id: str, external_id: str,
                        for_update: bool = False) -> Any:
    """The live customer with this external_id; `for_update` locks it until the transaction ends (a
    delete racing an upsert then goes first or after, and the upsert sees which)."""
    query = select(customers).where(customers.c.organization_id == organization_id,
                                    customers.c.external_id == external_id, customers.c.deleted_at.is_(None))
    return (await conn.execute(query.with_for_update() if for_update else query)).one_or_none()


async def create_customer(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "customer")
    values = customer_values(Input(raw))
    async with engine(request).begin() as conn:
        row = await upsert_customer(conn, organization_id, values)
        return ok({"customer": await customer_document(conn, row)})


async def get_customer(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = await live_customer(conn, organization_id, request.path_params["external_id"])
        if row is None:
            raise not_found("customer")
        return ok({"customer": await customer_document(conn, row)})


async def delete_customer(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        row = await live_customer(conn, organization_id, request.path_params["external_id"])
        if row is None:
            raise not_found("customer")
        now = await now_for(conn, row.id)  # its test clock's time when it lives on one
        await terminate(conn, now, subscriptions.c.customer_id == row.id)
        row = (await conn.execute(update(customers).where(customers.c.id == row.id)
                                  .values(deleted_at=now, updated_at=now).returning(*customers.c))).one()
        return ok({"customer": await customer_document(conn, row)})


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
        tax_rows = await taxes_of(conn, customer_taxes, [r.id for r in rows])
    return ok({"customers": [serializers.customer(r, tax_rows[r.id]) for r in rows], "meta": meta})


# `:path`: an identifier may hold "/" (sent as %2F, it reaches the router decoded), as Lago allows
ROUTES = [
    Route("/api/v1/customers", create_customer, methods=["POST"]),
    Route("/api/v1/customers", list_customers, methods=["GET"]),
    Route("/api/v1/customers/{external_id:path}", get_customer, methods=["GET"]),
    Route("/api/v1/customers/{external_id:path}", delete_customer, methods=["DELETE"]),
]
