"""/api/v1/billable_metrics

Deleting marks the metric deleted (archived events and invoices keep referring to it) and frees
its code. A metric that a live plan charges for cannot be deleted (422), and while a subscribed plan
charges for it only its name and description can change: its aggregation state in Redis was built
with the current code, aggregation type and field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db.tables import billable_metrics, charges, plans, subscriptions
from core.domain.aggregation import AGGREGATION_TYPES
from core.domain.charges import ChargeOptions, combination_errors
from core.http import JSONResponse, ok, validation_error
from rater import serializers
from rater.api.common import engine, live_by_code, new_id, org_and_input, page_params, paginate
from rater.inputs import MANDATORY, NOT_SUPPORTED, TAKEN, Input

WEIGHTED_INTERVALS = ("seconds",)
# What the aggregator's state depends on: frozen while a subscription may have events for it.
FROZEN_WHEN_SUBSCRIBED = ("code", "aggregation_type", "field_name", "recurring", "weighted_interval")


def metric_fields(data: Input, *, creating: bool) -> dict[str, Any]:
    """The fields given (all of them on create, with defaults), validated one by one."""
    fields: dict[str, Any] = {}
    if creating or data.given("name"):
        fields["name"] = data.text("name", required=True)
    if creating or data.given("code"):
        fields["code"] = data.identifier("code", required=True)
    if creating or data.given("description"):
        fields["description"] = data.text("description", max_length=10_000)
    if creating or data.given("aggregation_type"):
        fields["aggregation_type"] = data.choice("aggregation_type", AGGREGATION_TYPES, required=True)
    if creating or data.given("field_name"):
        fields["field_name"] = data.text("field_name")
    if creating or data.given("recurring"):
        fields["recurring"] = False  # usage carried over from period to period: not metered so
        data.boolean("recurring")  # its type; `true` is refused by check_consistency
    if creating or data.given("weighted_interval"):
        fields["weighted_interval"] = data.choice("weighted_interval", WEIGHTED_INTERVALS)
    data.unsupported("expression", "rounding_function", "rounding_precision")
    if data.given("filters") and data.raw["filters"] != []:
        data.fail("filters", NOT_SUPPORTED)
    return fields


def check_consistency(data: Input, merged: dict[str, Any]) -> None:
    """Rules across fields, on the metric as it would be stored."""
    aggregation_type = merged.get("aggregation_type")
    if data.raw.get("recurring") is True:  # Lago's own refusal first: these aggregations cannot carry over
        data.fail("recurring", "not_compatible_with_aggregation_type"
                  if aggregation_type in ("count_agg", "max_agg", "latest_agg") else NOT_SUPPORTED)
    if aggregation_type not in (None, "count_agg") and not merged.get("field_name"):
        data.fail("field_name", MANDATORY)
    if aggregation_type == "weighted_sum_agg" and merged.get("weighted_interval") is None:
        merged["weighted_interval"] = "seconds"
    if aggregation_type != "weighted_sum_agg":
        merged["weighted_interval"] = None


async def live_metric(conn: AsyncConnection, organization_id: str, code: str) -> Any:
    return await live_by_code(conn, billable_metrics, organization_id, code, "billable_metric")


async def create_metric(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "billable_metric")
    data = Input(raw)
    values = metric_fields(data, creating=True)
    check_consistency(data, values)
    data.check()
    try:
        async with engine(request).begin() as conn:
            row = (await conn.execute(
                billable_metrics.insert()
                .values(id=new_id(), organization_id=organization_id, **values)
                .returning(*billable_metrics.c)
            )).one()
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc
    return ok({"billable_metric": serializers.billable_metric(row)})


async def update_metric(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "billable_metric")
    data = Input(raw)
    changes = metric_fields(data, creating=False)
    try:
        async with engine(request).begin() as conn:
            row = await live_metric(conn, organization_id, request.path_params["code"])
            changes = {k: v for k, v in changes.items() if v != getattr(row, k)}
            frozen = [k for k in changes if k in FROZEN_WHEN_SUBSCRIBED]
            if frozen and await _subscribed(conn, row.id):
                for name in frozen:
                    data.fail(name, "not_editable_while_subscribed")
            merged = {**row._asdict(), **changes}
            check_consistency(data, merged)
            if "aggregation_type" in changes:  # the plans' charges must still accept it (Lago's rules)
                for charge in (await conn.execute(select(charges).where(charges.c.billable_metric_id == row.id)
                                                  )).all():
                    options = ChargeOptions(charge.charge_model, min_amount_cents=charge.min_amount_cents)
                    for code in combination_errors(options, changes["aggregation_type"]).values():
                        data.fail("aggregation_type", code)
            data.check()
            changes["weighted_interval"] = merged["weighted_interval"]
            row = (await conn.execute(update(billable_metrics).where(billable_metrics.c.id == row.id)
                                      .values(**changes).returning(*billable_metrics.c))).one()
    except IntegrityError as exc:
        raise validation_error({"code": [TAKEN]}) from exc
    return ok({"billable_metric": serializers.billable_metric(row)})


async def _subscribed(conn: AsyncConnection, metric_id: str) -> bool:
    """Whether any subscription (of any status) is on a plan that charges for the metric."""
    return bool((await conn.execute(select(exists().where(
        charges.c.billable_metric_id == metric_id, subscriptions.c.plan_id == charges.c.plan_id,
    )))).scalar())


async def delete_metric(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).begin() as conn:
        row = await live_metric(conn, organization_id, request.path_params["code"])
        used = (await conn.execute(
            select(plans.c.code).join(charges, charges.c.plan_id == plans.c.id)
            .where(charges.c.billable_metric_id == row.id, plans.c.deleted_at.is_(None)).limit(1)
        )).scalar_one_or_none()
        if used is not None:
            raise validation_error({"billable_metric": ["used_by_plans"]})
        row = (await conn.execute(update(billable_metrics).where(billable_metrics.c.id == row.id)
                                  .values(deleted_at=datetime.now(UTC)).returning(*billable_metrics.c))).one()
    return ok({"billable_metric": serializers.billable_metric(row)})


async def get_metric(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = await live_metric(conn, organization_id, request.path_params["code"])
    return ok({"billable_metric": serializers.billable_metric(row)})


async def list_metrics(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(billable_metrics)
             .where(billable_metrics.c.organization_id == organization_id,
                    billable_metrics.c.deleted_at.is_(None))
             .order_by(billable_metrics.c.created_at.desc(), billable_metrics.c.id))
    if request.query_params.getlist("aggregation_types[]"):
        query = query.where(billable_metrics.c.aggregation_type.in_(
            request.query_params.getlist("aggregation_types[]")))
    if request.query_params.get("recurring") in ("true", "false"):
        query = query.where(billable_metrics.c.recurring.is_(request.query_params["recurring"] == "true"))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"billable_metrics": [serializers.billable_metric(r) for r in rows], "meta": meta})


# `:path`: an identifier may hold "/" (sent as %2F, it reaches the router decoded), as Lago allows
ROUTES = [
    Route("/api/v1/billable_metrics", create_metric, methods=["POST"]),
    Route("/api/v1/billable_metrics", list_metrics, methods=["GET"]),
    Route("/api/v1/billable_metrics/{code:path}", get_metric, methods=["GET"]),
    Route("/api/v1/billable_metrics/{code:path}", update_metric, methods=["PUT"]),
    Route("/api/v1/billable_metrics/{code:path}", delete_metric, methods=["DELETE"]),
]
