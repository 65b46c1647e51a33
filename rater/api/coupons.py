"""/api/v1/coupons and /api/v1/applied_coupons: coupons, applied to customers, that reduce their invoices when
they are finalized (core.domain.coupons, rater.billing.coupons).

A coupon is named by its `code`. Once applied, only its name, description and expiration can change (its
amounts and limits are what its applied coupons were given: a change of those is refused, not ignored).
DELETE marks it deleted and terminates its applied coupons. A coupon past its `expiration_at` cannot be
applied any more; those applied before keep reducing invoices, as Lago's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.clocks import now_for
from core.db.locks import lock_customers
from core.db.sql import any_of
from core.db.tables import (
    applied_coupons,
    billable_metrics,
    coupon_credits,
    coupon_targets,
    coupons,
    customers,
    plans,
)
from core.domain.charges import units_text
from core.http import JSONResponse, bad_request, canonical_uuid, not_allowed, not_found, ok, validation_error
from rater.api.common import engine, live_by_code, new_id, org_and_input, page_params, paginate
from rater.api.customers import live_customer
from rater.inputs import BAD_FORMAT, INVALID, MANDATORY, MAX_AMOUNT_CENTS, TAKEN, Input, has_control
from rater.serializers import iso

COUPON_TYPES = ("fixed_amount", "percentage")
FREQUENCIES = ("once", "recurring", "forever")
EXPIRATIONS = ("no_expiration", "time_limit")
LIVE = coupons.c.deleted_at.is_(None)
# what an applied coupon keeps: changing it afterwards would bill differently than shown
FROZEN_ONCE_APPLIED = ("code", "coupon_type", "amount_cents", "amount_currency", "percentage_rate", "frequency",
                       "frequency_duration", "reusable", "applies_to")


def _codes(data: Input) -> tuple[list[str], list[str]] | None:
    """`applies_to`: (plan codes, metric codes), or None when not given."""
    raw = data.raw.get("applies_to")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        data.fail("applies_to", BAD_FORMAT)
        return None
    found = []
    for name in ("plan_codes", "billable_metric_codes"):
        codes = raw.get(name) or []
        if not isinstance(codes, list) or not all(isinstance(c, str) and c and len(c) <= 255 for c in codes):
            data.fail(f"applies_to.{name}", BAD_FORMAT)
            codes = []
        elif any(has_control(c) for c in codes):
            data.fail(f"applies_to.{name}", INVALID)
            codes = []
        found.append(list(dict.fromkeys(codes)))
    return found[0], found[1]


def _given(data: Input, name: str) -> bool:
    """A value given: not null, not an empty string (what clients send for a field left unset)."""
    return data.raw.get(name) not in (None, "")


def coupon_values(data: Input, *, creating: bool, current: Any = None) -> dict[str, Any]:
    """The coupon's fields given (all of them on create), checked against each other as they will be: a field
    its type, frequency or expiration does not have is refused (INVALID), not dropped, and one they need is
    required (MANDATORY), also when a PUT changes the type, frequency or expiration alone."""
    values: dict[str, Any] = {}
    if creating or data.given("name"):
        values["name"] = data.text("name", required=True)
    if creating or data.given("code"):
        values["code"] = data.identifier("code", required=True)
    if "description" in data.raw:
        values["description"] = data.text("description", max_length=10_000)
    for name, options in (("coupon_type", COUPON_TYPES), ("frequency", FREQUENCIES), ("expiration", EXPIRATIONS)):
        if creating or data.given(name):
            values[name] = data.choice(name, options, required=True)
    was = {} if current is None else dict(current._mapping)
    kind, frequency, expiration = (values.get(name, was.get(name)) for name in ("coupon_type", "frequency",
                                                                                 "expiration"))
    fitting = {"amount_cents": kind == "fixed_amount", "amount_currency": kind == "fixed_amount",
               "percentage_rate": kind == "percentage", "frequency_duration": frequency == "recurring",
               "expiration_at": expiration == "time_limit"}
    for name, fits in fitting.items():
        if _given(data, name) and not fits:
            data.fail(name, INVALID)
        elif _given(data, name):
            if name == "amount_cents":
                values[name] = data.integer(name, minimum=1, maximum=MAX_AMOUNT_CENTS)
            elif name == "amount_currency":
                values[name] = data.currency(name)
            elif name == "percentage_rate":
                values[name] = data.percentage("percentage_rate", required=True, above_zero=True)
            elif name == "frequency_duration":
                values[name] = data.integer(name, minimum=1)
            else:
                moment = data.moment(name)
                if moment is not None and moment.date() < datetime.now(UTC).date():
                    data.fail(name, "invalid_date")
                values[name] = moment
        elif not fits and (creating or was.get(name) is not None):  # what a change of type or frequency ends
            values[name] = None
    if creating or data.given("reusable"):
        reusable = data.boolean("reusable")
        values["reusable"] = True if reusable is None else reusable
    final = {**was, **values}
    for name, fits in fitting.items():
        if fits and final.get(name) is None and name not in data.errors:
            data.fail(name, MANDATORY)
    data.check()
    return values


async def _targets(conn: AsyncConnection, organization_id: str, codes: tuple[list[str], list[str]] | None
                   ) -> list[dict[str, Any]] | None:
    """The coupon_targets rows `applies_to` names (None: not given); 404/405 in Lago's codes."""
    if codes is None:
        return None
    plan_codes, metric_codes = codes
    if plan_codes and metric_codes:
        raise not_allowed("only_one_limitation_type_per_coupon_allowed")
    if plan_codes:
        found = dict((await conn.execute(select(plans.c.code, plans.c.id).where(
            plans.c.organization_id == organization_id, plans.c.deleted_at.is_(None),
            any_of(plans.c.code, plan_codes)))).tuples().all())
        if len(found) != len(plan_codes):
            raise not_found("plans")
        return [{"plan_id": found[code], "billable_metric_id": None} for code in plan_codes]
    if metric_codes:
        found = dict((await conn.execute(select(billable_metrics.c.code, billable_metrics.c.id).where(
            billable_metrics.c.organization_id == organization_id, billable_metrics.c.deleted_at.is_(None),
            any_of(billable_metrics.c.code, metric_codes)))).tuples().all())
        if len(found) != len(metric_codes):
            raise not_found("billable_metrics")
        return [{"plan_id": None, "billable_metric_id": found[code]} for code in metric_codes]
    return []


async def coupon_documents(conn: AsyncConnection, rows: list[Any]) -> list[dict[str, Any]]:
    ids = [row.id for row in rows]
    plan_codes: dict[str, list[str]] = {i: [] for i in ids}
    metric_codes: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for target in await conn.execute(
                select(coupon_targets.c.coupon_id, plans.c.code.label("plan_code"),
                       billable_metrics.c.code.label("metric_code"))
                .outerjoin(plans, plans.c.id == coupon_targets.c.plan_id)
                .outerjoin(billable_metrics, billable_metrics.c.id == coupon_targets.c.billable_metric_id)
                .where(any_of(coupon_targets.c.coupon_id, ids))):
            if target.plan_code is not None:
                plan_codes[target.coupon_id].append(target.plan_code)
            if target.metric_code is not None:
                metric_codes[target.coupon_id].append(target.metric_code)
    return [{
        "lago_id": row.id, "name": row.name, "code": row.code, "description": row.description,
        "coupon_type": row.coupon_type, "amount_cents": row.amount_cents, "amount_currency": row.amount_currency,
        "reusable": row.reusable, "limited_plans": bool(plan_codes[row.id]), "plan_codes": sorted(plan_codes[row.id]),
        "limited_billable_metrics": bool(metric_codes[row.id]),
        "billable_metric_codes": sorted(metric_codes[row.id]),
        "percentage_rate": None if row.percentage_rate is None else units_text(Decimal(row.percentage_rate)),
        "frequency": row.frequency, "frequency_duration": row.frequency_duration, "expiration": row.expiration,
        "expiration_at": iso(row.expiration_at), "created_at": iso(row.created_at),
        "terminated_at": iso(row.terminated_at),
    } for row in rows]


async def create_coupon(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "coupon")
    data = Input(raw)
    codes = _codes(data)
    values = coupon_values(data, creating=True)
    try:
        async with engine(request).begin() as conn:
            targets = await _targets(conn, organization_id, codes) or []
            row = (await conn.execute(coupons.insert().returning(*coupons.c).values(
                id=new_id(), organization_id=organization_id, **values))).one()
            if targets:
                await conn.execute(insert(coupon_targets), [{"coupon_id": row.id, **t} for t in targets])
            return ok({"coupon": (await coupon_documents(conn, [row]))[0]})
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc


async def update_coupon(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "coupon")
    data = Input(raw)
    codes = _codes(data)
    try:
        async with engine(request).begin() as conn:
            current = await live_by_code(conn, coupons, organization_id, request.path_params["code"], "coupon",
                                   for_update=True)
            values = coupon_values(data, creating=False, current=current)
            applied = bool((await conn.execute(select(exists().where(
                applied_coupons.c.coupon_id == current.id)))).scalar())
            if applied:
                changed = [name for name in FROZEN_ONCE_APPLIED if name in values and values[name] != getattr(
                    current, name, None)] + (["applies_to"] if codes is not None else [])
                if changed:
                    raise validation_error({name: ["not_editable_once_applied"] for name in changed})
            targets = await _targets(conn, organization_id, codes)
            row = (await conn.execute(update(coupons).where(coupons.c.id == current.id).returning(*coupons.c)
                                      .values(updated_at=func.now(), **values))).one()
            if targets is not None:
                await conn.execute(delete(coupon_targets).where(coupon_targets.c.coupon_id == row.id))
                if targets:
                    await conn.execute(insert(coupon_targets), [{"coupon_id": row.id, **t} for t in targets])
            return ok({"coupon": (await coupon_documents(conn, [row]))[0]})
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc


async def get_coupon(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = await live_by_code(conn, coupons, organization_id, request.path_params["code"], "coupon")
        return ok({"coupon": (await coupon_documents(conn, [row]))[0]})


async def delete_coupon(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        row = await live_by_code(conn, coupons, organization_id, request.path_params["code"], "coupon",
                                   for_update=True)
        await conn.execute(update(applied_coupons).where(
            applied_coupons.c.coupon_id == row.id, applied_coupons.c.status == "active").values(
            status="terminated", terminated_at=func.now(), updated_at=func.now()))
        row = (await conn.execute(update(coupons).where(coupons.c.id == row.id).returning(*coupons.c).values(
            deleted_at=func.now(), status="terminated", terminated_at=func.coalesce(coupons.c.terminated_at,
                                                                                    func.now()),
            updated_at=func.now()))).one()
        return ok({"coupon": (await coupon_documents(conn, [row]))[0]})


async def list_coupons(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(coupons).where(coupons.c.organization_id == organization_id, LIVE)
             .order_by(coupons.c.created_at.desc(), coupons.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
        return ok({"coupons": await coupon_documents(conn, rows), "meta": meta})


def _applied_query() -> Any:
    remaining = (select(func.coalesce(func.sum(coupon_credits.c.amount_cents), 0))
                 .where(coupon_credits.c.applied_coupon_id == applied_coupons.c.id).scalar_subquery())
    return (select(applied_coupons, coupons.c.code.label("coupon_code"), coupons.c.name.label("coupon_name"),
                   coupons.c.description.label("coupon_description"), coupons.c.deleted_at.label("coupon_deleted_at"),
                   coupons.c.expiration_at.label("coupon_expiration_at"),
                   coupons.c.status.label("coupon_status"), customers.c.external_id.label("external_customer_id"),
                   remaining.label("taken_cents"))
            .join(coupons, coupons.c.id == applied_coupons.c.coupon_id)
            .join(customers, customers.c.id == applied_coupons.c.customer_id))


def applied_document(row: Any) -> dict[str, Any]:
    """An applied coupon (Lago's AppliedCouponObject)."""
    fixed_once = row.frequency == "once" and row.amount_cents is not None
    return {
        "lago_id": row.id, "lago_coupon_id": row.coupon_id, "coupon_code": row.coupon_code,
        "coupon_name": row.coupon_name, "coupon_description": row.coupon_description,
        "coupon_status": "terminated" if row.coupon_deleted_at is not None else row.coupon_status,
        "coupon_deleted_at": iso(row.coupon_deleted_at), "lago_customer_id": row.customer_id,
        "external_customer_id": row.external_customer_id, "status": row.status,
        "amount_cents": row.amount_cents,
        "amount_cents_remaining": (row.amount_cents - int(row.taken_cents)) if fixed_once else None,
        "amount_currency": row.amount_currency,
        "percentage_rate": None if row.percentage_rate is None else units_text(Decimal(row.percentage_rate)),
        "frequency": row.frequency, "frequency_duration": row.frequency_duration,
        "frequency_duration_remaining": row.frequency_duration_remaining,
        "expiration_at": iso(row.coupon_expiration_at), "created_at": iso(row.created_at),
        "terminated_at": iso(row.terminated_at),
    }


async def apply_coupon(request: Request) -> JSONResponse:
    """Apply a coupon to a customer, with the coupon's amounts and frequency unless given (Lago's checks, in
    Lago's order: customer, coupon, reusability, currency)."""
    organization_id, raw = await org_and_input(request, "applied_coupon")
    data = Input(raw)
    external_customer_id = data.identifier("external_customer_id", required=True)
    coupon_code = data.identifier("coupon_code", required=True)
    overrides: dict[str, Any] = {}
    if _given(data, "amount_cents"):
        overrides["amount_cents"] = data.integer("amount_cents", minimum=1, maximum=MAX_AMOUNT_CENTS)
    if _given(data, "amount_currency"):
        overrides["amount_currency"] = data.currency("amount_currency")
    if _given(data, "percentage_rate"):
        overrides["percentage_rate"] = data.percentage("percentage_rate", required=True, above_zero=True)
    if _given(data, "frequency"):
        overrides["frequency"] = data.choice("frequency", FREQUENCIES)
    if _given(data, "frequency_duration"):
        overrides["frequency_duration"] = data.integer("frequency_duration", minimum=1)
    data.check()
    async with engine(request).begin() as conn:
        customer = await live_customer(conn, organization_id, external_customer_id or "")
        if customer is None:
            raise not_found("customer")
        await lock_customers(conn, [customer.id])  # a billing run takes its coupons before or after this
        coupon = (await conn.execute(select(coupons).where(  # FOR SHARE: a change or delete of it waits
            coupons.c.organization_id == organization_id, coupons.c.code == coupon_code, LIVE,
            coupons.c.status == "active").with_for_update(read=True))).one_or_none()
        if coupon is None or (coupon.expiration_at is not None
                              and coupon.expiration_at <= await now_for(conn, customer.id)):  # its clock's, if any
            raise not_found("coupon")
        if not coupon.reusable and (await conn.execute(select(exists().where(
                applied_coupons.c.coupon_id == coupon.id, applied_coupons.c.customer_id == customer.id)))).scalar():
            raise validation_error({"coupon": ["coupon_is_not_reusable"]})
        values = {name: getattr(coupon, name) for name in ("amount_cents", "amount_currency", "percentage_rate",
                                                           "frequency", "frequency_duration")}
        values.update(overrides)
        unfit = [name for name in overrides if (name in ("amount_cents", "amount_currency")
                                                and coupon.coupon_type != "fixed_amount")
                 or (name == "percentage_rate" and coupon.coupon_type != "percentage")
                 or (name == "frequency_duration" and values["frequency"] != "recurring")]
        if unfit:  # what the coupon's type or the frequency does not have: refused, not dropped
            raise validation_error({name: [INVALID] for name in unfit})
        if values["frequency"] == "recurring" and not values["frequency_duration"]:
            raise validation_error({"frequency_duration": [MANDATORY]})
        if values["frequency"] != "recurring":
            values["frequency_duration"] = None
        if coupon.coupon_type == "fixed_amount":
            if customer.currency is None:
                await conn.execute(update(customers).where(customers.c.id == customer.id).values(
                    currency=values["amount_currency"]))
            elif customer.currency != values["amount_currency"]:
                raise validation_error({"currency": ["currencies_does_not_match"]})
        applied_id = new_id()
        await conn.execute(insert(applied_coupons).values(
            id=applied_id, organization_id=organization_id, coupon_id=coupon.id, customer_id=customer.id,
            frequency_duration_remaining=values["frequency_duration"], **values))
        row = (await conn.execute(_applied_query().where(applied_coupons.c.id == applied_id))).one()
        return ok({"applied_coupon": applied_document(row)})


async def list_applied_coupons(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    return await _list_applied(request, organization_id, request.query_params.get("external_customer_id"))


async def list_customer_applied_coupons(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        if await live_customer(conn, organization_id, request.path_params["external_customer_id"]) is None:
            raise not_found("customer")
    return await _list_applied(request, organization_id, request.path_params["external_customer_id"])


async def _list_applied(request: Request, organization_id: str, external_customer_id: str | None) -> JSONResponse:
    page, per_page = page_params(request)
    query = _applied_query().where(applied_coupons.c.organization_id == organization_id,
                                   customers.c.deleted_at.is_(None))
    status = request.query_params.get("status")
    if status is not None:
        if status not in ("active", "terminated"):
            raise bad_request("status must be active or terminated")
        query = query.where(applied_coupons.c.status == status)
    if external_customer_id:
        query = query.where(customers.c.external_id == external_customer_id)
    codes = request.query_params.getlist("coupon_code[]")
    if codes:
        query = query.where(any_of(coupons.c.code, codes))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query.order_by(applied_coupons.c.created_at.desc(), applied_coupons.c.id),
                                    page, per_page)
    return ok({"applied_coupons": [applied_document(row) for row in rows], "meta": meta})


async def terminate_applied_coupon(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        customer = await live_customer(conn, organization_id, request.path_params["external_customer_id"])
        if customer is None:
            raise not_found("customer")
        await lock_customers(conn, [customer.id])
        applied_id = canonical_uuid(request.path_params["applied_coupon_id"])
        if applied_id is None:
            raise not_found("applied_coupon")
        found = (await conn.execute(select(applied_coupons.c.id).where(
            applied_coupons.c.customer_id == customer.id, applied_coupons.c.id == applied_id))).scalar_one_or_none()
        if found is None:
            raise not_found("applied_coupon")
        await conn.execute(update(applied_coupons).where(applied_coupons.c.id == found).values(
            status="terminated", terminated_at=func.coalesce(applied_coupons.c.terminated_at, func.now()),
            updated_at=func.now()))
        row = (await conn.execute(_applied_query().where(applied_coupons.c.id == found))).one()
        return ok({"applied_coupon": applied_document(row)})


ROUTES = [
    Route("/api/v1/coupons", create_coupon, methods=["POST"]),
    Route("/api/v1/coupons", list_coupons, methods=["GET"]),
    Route("/api/v1/coupons/{code:path}", get_coupon, methods=["GET"]),
    Route("/api/v1/coupons/{code:path}", update_coupon, methods=["PUT"]),
    Route("/api/v1/coupons/{code:path}", delete_coupon, methods=["DELETE"]),
    Route("/api/v1/applied_coupons", apply_coupon, methods=["POST"]),
    Route("/api/v1/applied_coupons", list_applied_coupons, methods=["GET"]),
    Route("/api/v1/customers/{external_customer_id:path}/applied_coupons", list_customer_applied_coupons,
          methods=["GET"]),
    Route("/api/v1/customers/{external_customer_id:path}/applied_coupons/{applied_coupon_id}",
          terminate_applied_coupon, methods=["DELETE"]),
]
