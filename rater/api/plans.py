"""/api/v1/plans

PUT changes the keys given; when `charges` is given it is the plan's new list of charges: a charge
with the `id` of an existing one updates it, one without is added, existing ones left out are
removed (as in Lago); `usage_thresholds` given is the plan's new list of progressive billing
thresholds (rater.api.usage_thresholds). DELETE marks the plan deleted and terminates its subscriptions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import String, cast, delete, exists, false, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.catalog import plan_charges
from core.db.clocks import customer_now
from core.db.tables import billable_metrics, charge_taxes, charges, plan_taxes, plans, subscriptions
from core.domain.charges import ChargeOptions, combination_errors
from core.domain.periods import INTERVALS
from core.domain.pricing import InvalidChargeProperties, documented_properties, validate_properties
from core.http import JSONResponse, not_found, ok, validation_error
from rater.activation import terminate
from rater.api.common import engine, live_by_code, new_id, org_and_input, page_params, paginate
from rater.api.taxes import attach_taxes, read_tax_codes
from rater.api.usage_thresholds import read_usage_thresholds, replace_usage_thresholds
from rater.billing.documents import plan_documents
from rater.inputs import BAD_FORMAT, INVALID, MANDATORY, MAX_AMOUNT_CENTS, MAX_DAYS, NOT_SUPPORTED, TAKEN, Input

CHARGE_MODELS = ("standard", "graduated", "volume", "package", "percentage")
_UNSUPPORTED_LISTS = ("fixed_charges",)


def plan_fields(data: Input, *, creating: bool) -> dict[str, Any]:
    """The plan's own fields that were given (all of them on create, with defaults)."""
    fields: dict[str, Any] = {}
    readers = {
        "name": lambda: data.text("name", required=True),
        "code": lambda: data.identifier("code", required=True),
        "invoice_display_name": lambda: data.text("invoice_display_name"),
        "description": lambda: data.text("description", max_length=10_000),
        "interval": lambda: data.choice("interval", INTERVALS, required=True),
        "amount_cents": lambda: data.integer("amount_cents", required=True, maximum=MAX_AMOUNT_CENTS),
        "amount_currency": lambda: data.currency("amount_currency", required=True),
        "pay_in_advance": lambda: bool(data.boolean("pay_in_advance")),
        "bill_charges_monthly": lambda: data.boolean("bill_charges_monthly"),
        "trial_period": lambda: data.integer("trial_period", maximum=MAX_DAYS) or 0,
    }
    for name, read in readers.items():
        if creating or data.given(name):
            fields[name] = read()
    if data.given("charges") and not isinstance(data.raw["charges"], list):
        data.fail("charges", BAD_FORMAT)
    data.unsupported(*_UNSUPPORTED_LISTS, "minimum_commitment")
    return fields


# Charge properties of Lago's that meterline's pricing does not apply.
_UNSUPPORTED_PROPERTIES = ("grouped_by", "pricing_group_keys", "free_units_per_events",
                           "free_units_per_total_aggregation", "per_transaction_min_amount",
                           "per_transaction_max_amount")


def monthly_charges(interval: str, asked: bool | None) -> bool | None:
    """`bill_charges_monthly` as stored: a yearly plan's choice (false unless asked), null for other
    intervals, whose usage is billed every period anyway (as Lago keeps it)."""
    return bool(asked) if interval == "yearly" else None


def _property_field(code: str) -> str:
    """Lago keys a pricing error by the property at fault: invalid_graduated_ranges → graduated_ranges."""
    return code.removeprefix("invalid_") if code.startswith("invalid_") else "properties"


def charge_values(index: int, raw: Any, errors: dict[str, list[str]]) -> dict[str, Any] | None:
    """One charge of the input, validated; errors go to `errors` (keyed as Lago does)."""
    if not isinstance(raw, dict):
        errors.setdefault(f"charges.{index}", []).append(BAD_FORMAT)
        return None
    data = Input(raw)
    model = data.choice("charge_model", CHARGE_MODELS, required=True)
    properties = data.raw.get("properties") or {}
    if not isinstance(properties, dict):
        data.fail("properties", BAD_FORMAT)
    elif "\\u0000" in orjson.dumps(properties).decode():
        data.fail("properties", INVALID)  # PostgreSQL's JSONB cannot hold U+0000
    elif model is not None:
        try:
            validate_properties(model, properties)
        except InvalidChargeProperties as exc:
            data.fail(_property_field(exc.code), exc.code)
    if data.given("filters") and data.raw["filters"] != []:
        data.fail("filters", NOT_SUPPORTED)
    if isinstance(properties, dict):
        for name in Input(properties).given_of(*_UNSUPPORTED_PROPERTIES):
            data.fail(name, NOT_SUPPORTED)
    # pricing units, wallet targets, charge codes (what Lago's newer API names charges by)
    data.unsupported("applied_pricing_unit", "accepts_target_wallet", "code")
    if not any(data.given(name) for name in ("billable_metric_id", "billable_metric_code", "id")):
        data.fail("billable_metric_id", MANDATORY)
    values = {
        "id": data.text("id", max_length=64),
        "charge_model": model,
        "properties": documented_properties(model, properties) if isinstance(properties, dict) else {},
        "invoice_display_name": data.text("invoice_display_name"),
        # checked against the billable metric once it is found (check_options)
        "options": ChargeOptions(
            model or "standard", pay_in_advance=bool(data.boolean("pay_in_advance")),
            invoiceable=data.boolean("invoiceable") is not False, prorated=bool(data.boolean("prorated")),
            regroup_paid_fees=data.given("regroup_paid_fees"),
            min_amount_cents=data.integer("min_amount_cents", maximum=MAX_AMOUNT_CENTS) or 0),
        "metric_id": data.text("billable_metric_id", max_length=64),
        "metric_code": data.text("billable_metric_code"),
        "tax_codes": read_tax_codes(data),
    }
    for name, codes in data.errors.items():
        key = name if name in ("graduated_ranges", "volume_ranges", "amount", "package_size", "rate",
                               "properties") else f"charges.{index}.{name}"
        errors.setdefault(key, []).extend(codes)
    return None if data.errors else values


# Options Lago allows (for some models and metrics) that meterline does not bill: charges paid per event
# in advance, prorated recurring charges, fees regrouped on payment.
_UNSUPPORTED_OPTIONS = ("pay_in_advance", "prorated", "regroup_paid_fees")


def check_options(wanted: list[dict[str, Any]]) -> None:
    """422 for the charge options Lago refuses with the charge's model and metric (Lago's codes), then
    for those meterline does not bill (not_supported). Each charge has its `aggregation_type` by now."""
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(wanted):
        options: ChargeOptions = item["options"]
        found = combination_errors(options, item["aggregation_type"])
        for name in _UNSUPPORTED_OPTIONS:
            if getattr(options, name) and name not in found:
                found[name] = NOT_SUPPORTED
        for name, code in found.items():
            errors.setdefault(f"charges.{index}.{name}", []).append(code)
    if errors:
        raise validation_error(errors)


def read_charges(data: Input, errors: dict[str, list[str]]) -> list[dict[str, Any]] | None:
    """The `charges` list when given (None when not), every element validated."""
    raw = data.raw.get("charges")
    if not isinstance(raw, list):
        return None
    items = [charge_values(i, c, errors) for i, c in enumerate(raw)]
    return [c for c in items if c is not None]


async def _resolve_metrics(conn: AsyncConnection, organization_id: str, wanted: list[dict[str, Any]],
                           existing: dict[str, Any]) -> None:
    """Set `billable_metric_id` on each wanted charge, from its id or code (404 when unknown)."""
    ids = [c["metric_id"] for c in wanted if c["metric_id"]]
    codes = [c["metric_code"] for c in wanted if not c["metric_id"] and c["metric_code"]]
    rows = (await conn.execute(select(billable_metrics.c.id, billable_metrics.c.code,
                                      billable_metrics.c.aggregation_type).where(
        billable_metrics.c.organization_id == organization_id, billable_metrics.c.deleted_at.is_(None),
        or_(cast(billable_metrics.c.id, String).in_(ids) if ids else false(),
            billable_metrics.c.code.in_(codes) if codes else false()),
    ))).all()
    by_id = {str(row.id): row for row in rows}
    by_code = {row.code: row for row in rows}
    for item in wanted:
        if item["id"] in existing:  # an existing charge keeps its metric, as in Lago
            kept = existing[item["id"]]
            item["billable_metric_id"], item["aggregation_type"] = kept.billable_metric_id, kept.aggregation_type
            continue
        metric_id, metric_code = item["metric_id"], item["metric_code"] or ""
        resolved = by_id.get(metric_id) if metric_id else by_code.get(metric_code)
        if resolved is None:
            raise not_found("billable_metric")
        item["billable_metric_id"], item["aggregation_type"] = str(resolved.id), resolved.aggregation_type


def _charge_row(item: dict[str, Any], position: int) -> dict[str, Any]:
    return {"billable_metric_id": item["billable_metric_id"], "charge_model": item["charge_model"],
            "properties": item["properties"], "invoice_display_name": item["invoice_display_name"],
            "pay_in_advance": False, "invoiceable": True, "min_amount_cents": item["options"].min_amount_cents,
            "position": position}


async def replace_charges(conn: AsyncConnection, organization_id: str, plan_id: str,
                          wanted: list[dict[str, Any]]) -> None:
    existing = {str(c.id): c for c in (await plan_charges(conn, [plan_id]))[plan_id]}
    await _resolve_metrics(conn, organization_id, wanted, existing)
    check_options(wanted)
    kept = {item["id"] for item in wanted if item["id"] in existing}
    gone = [charge_id for charge_id in existing if charge_id not in kept]
    if gone:
        await conn.execute(delete(charges).where(charges.c.id.in_(gone)))
    for position, item in enumerate(wanted):
        values = _charge_row(item, position)
        charge_id = item["id"] if item["id"] in existing else new_id()
        if item["id"] in existing:
            await conn.execute(update(charges).where(charges.c.id == charge_id).values(**values))
        else:
            await conn.execute(charges.insert().values(id=charge_id, plan_id=plan_id, **values))
        await attach_taxes(conn, organization_id, charge_taxes, charge_id, item["tax_codes"])


async def live_plan(conn: AsyncConnection, organization_id: str, code: str) -> Any:
    return await live_by_code(conn, plans, organization_id, code, "plan")


async def _answer(conn: AsyncConnection, row: Any) -> JSONResponse:
    return ok({"plan": (await plan_documents(conn, [row]))[0]})


async def create_plan(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "plan")
    data = Input(raw)
    values = plan_fields(data, creating=True)
    tax_codes = read_tax_codes(data)
    errors: dict[str, list[str]] = data.errors
    wanted = read_charges(data, errors) or []
    thresholds = read_usage_thresholds(data.raw.get("usage_thresholds"), "usage_thresholds", errors)
    if errors:
        raise validation_error(errors)
    values["bill_charges_monthly"] = monthly_charges(values["interval"], values["bill_charges_monthly"])
    try:
        async with engine(request).begin() as conn:
            row = (await conn.execute(plans.insert().returning(*plans.c).values(
                id=new_id(), organization_id=organization_id, **values))).one()
            await replace_charges(conn, organization_id, row.id, wanted)
            await attach_taxes(conn, organization_id, plan_taxes, row.id, tax_codes)
            if thresholds:
                await replace_usage_thresholds(conn, organization_id, thresholds, plan_id=row.id)
            return await _answer(conn, row)
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc


async def update_plan(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "plan")
    data = Input(raw)
    changes = plan_fields(data, creating=False)
    tax_codes = read_tax_codes(data)
    errors: dict[str, list[str]] = data.errors
    wanted = read_charges(data, errors)
    thresholds = read_usage_thresholds(data.raw.get("usage_thresholds"), "usage_thresholds", errors)
    try:
        async with engine(request).begin() as conn:
            row = await live_plan(conn, organization_id, request.path_params["code"])
            if "interval" in changes or "bill_charges_monthly" in changes:
                asked = changes.get("bill_charges_monthly", row.bill_charges_monthly)
                changes["bill_charges_monthly"] = monthly_charges(changes.get("interval") or row.interval, asked)
            changes = {k: v for k, v in changes.items() if v != getattr(row, k)}
            # how a subscription's periods are cut: changing it would strand the usage counted so far
            frozen = "interval" if "interval" in changes else "bill_charges_monthly"
            if frozen in changes and await _subscribed(conn, row.id):
                errors.setdefault(frozen, []).append("not_editable_while_subscribed")
            if errors:
                raise validation_error(errors)
            if changes:
                row = (await conn.execute(update(plans).where(plans.c.id == row.id).values(**changes)
                                          .returning(*plans.c))).one()
            if wanted is not None:
                await replace_charges(conn, organization_id, row.id, wanted)
            await attach_taxes(conn, organization_id, plan_taxes, row.id, tax_codes)
            if thresholds is not None:
                await replace_usage_thresholds(conn, organization_id, thresholds, plan_id=row.id)
            return await _answer(conn, row)
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc


async def _subscribed(conn: AsyncConnection, plan_id: str) -> bool:
    return bool((await conn.execute(select(exists().where(subscriptions.c.plan_id == plan_id)))).scalar())


async def delete_plan(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    now = datetime.now(UTC)
    async with engine(request).begin() as conn:
        row = await live_plan(conn, organization_id, request.path_params["code"])
        # each subscription at its customer's now: a test clock's customer's at its clock's time
        await terminate(conn, customer_now(subscriptions.c.customer_id), subscriptions.c.plan_id == row.id)
        row = (await conn.execute(update(plans).where(plans.c.id == row.id).values(deleted_at=now)
                                  .returning(*plans.c))).one()
        return await _answer(conn, row)


async def get_plan(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        return await _answer(conn, await live_plan(conn, organization_id, request.path_params["code"]))


async def list_plans(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(plans).where(plans.c.organization_id == organization_id, plans.c.deleted_at.is_(None))
             .order_by(plans.c.created_at.desc(), plans.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
        return ok({"plans": await plan_documents(conn, rows), "meta": meta})


# `:path`: an identifier may hold "/" (sent as %2F, it reaches the router decoded), as Lago allows
ROUTES = [
    Route("/api/v1/plans", create_plan, methods=["POST"]),
    Route("/api/v1/plans", list_plans, methods=["GET"]),
    Route("/api/v1/plans/{code:path}", get_plan, methods=["GET"]),
    Route("/api/v1/plans/{code:path}", update_plan, methods=["PUT"]),
    Route("/api/v1/plans/{code:path}", delete_plan, methods=["DELETE"]),
]
