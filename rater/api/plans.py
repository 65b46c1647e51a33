"""/api/v1/plans"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, false, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from meterline.apikeys import authenticate
from meterline.http import JSONResponse, not_found, ok, validation_error
from rater import serializers
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.inputs import MANDATORY, TAKEN, Input
from rater.periods import INTERVALS
from rater.pricing import InvalidChargeProperties, validate_properties
from rater.tables import billable_metrics, charges, plans

CHARGE_MODELS = ("standard", "graduated", "volume", "package", "percentage")


def plan_values(data: Input) -> dict[str, Any]:
    values = {
        "name": data.text("name", required=True),
        "code": data.text("code", required=True),
        "invoice_display_name": data.text("invoice_display_name"),
        "description": data.text("description", max_length=10_000),
        "interval": data.choice("interval", INTERVALS, required=True),
        "amount_cents": data.integer("amount_cents", required=True),
        "amount_currency": data.currency("amount_currency", required=True),
        "pay_in_advance": bool(data.boolean("pay_in_advance")),
        "bill_charges_monthly": data.boolean("bill_charges_monthly"),
        "trial_period": data.integer("trial_period") or 0,
    }
    if data.given("charges") and not isinstance(data.raw["charges"], list):
        data.fail("charges", "invalid_format")
    return values


def charge_values(index: int, raw: Any, errors: dict[str, Any]) -> dict[str, Any] | None:
    data = Input(raw) if isinstance(raw, dict) else None
    if data is None:
        errors[f"charges.{index}"] = ["invalid_format"]
        return None
    model = data.choice("charge_model", CHARGE_MODELS, required=True)
    properties = data.raw.get("properties") or {}
    if not isinstance(properties, dict):
        data.fail("properties", "invalid_format")
    elif model is not None:
        try:
            validate_properties(model, properties)
        except InvalidChargeProperties as exc:
            data.fail("properties", exc.code)
    if not data.given("billable_metric_id") and not data.given("billable_metric_code"):
        data.fail("billable_metric_id", MANDATORY)
    for name, codes in data.errors.items():
        errors.setdefault(name if name == "properties" else f"charges.{index}.{name}", []).extend(codes)
    if data.errors:
        return None
    return {
        "charge_model": model,
        "properties": properties,
        "invoice_display_name": data.text("invoice_display_name"),
        "pay_in_advance": bool(data.boolean("pay_in_advance")),
        "invoiceable": data.boolean("invoiceable") is not False,
        "min_amount_cents": data.integer("min_amount_cents") or 0,
        "metric_id": data.raw.get("billable_metric_id"),
        "metric_code": data.raw.get("billable_metric_code"),
    }


async def _resolve_metrics(conn: AsyncConnection, organization_id: str, wanted: list[dict[str, Any]]) -> None:
    ids = [str(c["metric_id"]) for c in wanted if c["metric_id"]]
    codes = [str(c["metric_code"]) for c in wanted if not c["metric_id"]]
    rows = (await conn.execute(select(billable_metrics.c.id, billable_metrics.c.code).where(
        billable_metrics.c.organization_id == organization_id,
        or_(cast(billable_metrics.c.id, String).in_(ids) if ids else false(), billable_metrics.c.code.in_(codes)),
    ))).all()
    by_id = {row.id: row.id for row in rows}
    by_code = {row.code: row.id for row in rows}
    for item in wanted:
        resolved = by_id.get(str(item["metric_id"])) if item["metric_id"] else by_code.get(str(item["metric_code"]))
        if resolved is None:
            raise not_found("billable_metric")
        item["billable_metric_id"] = resolved


async def plan_charges(conn: AsyncConnection, plan_ids: list[str]) -> dict[str, list[Any]]:
    rows = (await conn.execute(
        select(charges, billable_metrics.c.code.label("billable_metric_code"))
        .join(billable_metrics, billable_metrics.c.id == charges.c.billable_metric_id)
        .where(charges.c.plan_id.in_(plan_ids)).order_by(charges.c.position)
    )).all()
    grouped: dict[str, list[Any]] = {plan_id: [] for plan_id in plan_ids}
    for row in rows:
        grouped[row.plan_id].append(row)
    return grouped


async def create_plan(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "plan")
    data = Input(raw)
    values = plan_values(data)
    errors: dict[str, Any] = dict(data.errors)
    raw_charges = data.raw.get("charges") if isinstance(data.raw.get("charges"), list) else []
    wanted = [charge_values(i, c, errors) for i, c in enumerate(raw_charges)]
    if errors:
        raise validation_error(errors)
    plan_id = new_id()
    try:
        async with engine(request).begin() as conn:
            await _resolve_metrics(conn, organization_id, [c for c in wanted if c is not None])
            row = (await conn.execute(plans.insert().values(id=plan_id, organization_id=organization_id, **values)
                                      .returning(*plans.c))).one()
            for position, item in enumerate(c for c in wanted if c is not None):
                await conn.execute(charges.insert().values(
                    id=new_id(), plan_id=plan_id, billable_metric_id=item["billable_metric_id"],
                    charge_model=item["charge_model"], properties=item["properties"],
                    invoice_display_name=item["invoice_display_name"], pay_in_advance=item["pay_in_advance"],
                    invoiceable=item["invoiceable"], min_amount_cents=item["min_amount_cents"], position=position,
                ))
            charge_rows = (await plan_charges(conn, [plan_id]))[plan_id]
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc
    return ok({"plan": serializers.plan(row, charge_rows)})


async def get_plan(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = (await conn.execute(select(plans).where(
            plans.c.organization_id == organization_id, plans.c.code == request.path_params["code"]
        ))).one_or_none()
        if row is None:
            raise not_found("plan")
        charge_rows = (await plan_charges(conn, [row.id]))[row.id]
    return ok({"plan": serializers.plan(row, charge_rows)})


async def list_plans(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(plans).where(plans.c.organization_id == organization_id)
             .order_by(plans.c.created_at.desc(), plans.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
        grouped = await plan_charges(conn, [r.id for r in rows]) if rows else {}
    return ok({"plans": [serializers.plan(r, grouped[r.id]) for r in rows], "meta": meta})


ROUTES = [
    Route("/api/v1/plans", create_plan, methods=["POST"]),
    Route("/api/v1/plans", list_plans, methods=["GET"]),
    Route("/api/v1/plans/{code}", get_plan, methods=["GET"]),
]
