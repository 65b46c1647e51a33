"""/api/v1/billable_metrics"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.routing import Route

from aggregator.model import AGGREGATION_TYPES
from meterline.apikeys import authenticate
from meterline.http import JSONResponse, not_found, ok, validation_error
from rater import serializers
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.inputs import TAKEN, Input
from rater.tables import billable_metrics

WEIGHTED_INTERVALS = ("seconds",)


def metric_values(data: Input) -> dict[str, object]:
    aggregation_type = data.choice("aggregation_type", AGGREGATION_TYPES, required=True)
    values = {
        "name": data.text("name", required=True),
        "code": data.text("code", required=True),
        "description": data.text("description", max_length=10_000),
        "aggregation_type": aggregation_type,
        "field_name": data.text("field_name", required=aggregation_type not in (None, "count_agg")),
        "recurring": bool(data.boolean("recurring")),
        "weighted_interval": data.choice("weighted_interval", WEIGHTED_INTERVALS),
    }
    if aggregation_type == "weighted_sum_agg" and values["weighted_interval"] is None:
        values["weighted_interval"] = "seconds"
    data.check()
    return values


async def create_metric(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "billable_metric")
    values = metric_values(Input(raw))
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


async def get_metric(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = (await conn.execute(select(billable_metrics).where(
            billable_metrics.c.organization_id == organization_id,
            billable_metrics.c.code == request.path_params["code"],
        ))).one_or_none()
    if row is None:
        raise not_found("billable_metric")
    return ok({"billable_metric": serializers.billable_metric(row)})


async def list_metrics(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (select(billable_metrics).where(billable_metrics.c.organization_id == organization_id)
             .order_by(billable_metrics.c.created_at.desc(), billable_metrics.c.id))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"billable_metrics": [serializers.billable_metric(r) for r in rows], "meta": meta})


ROUTES = [
    Route("/api/v1/billable_metrics", create_metric, methods=["POST"]),
    Route("/api/v1/billable_metrics", list_metrics, methods=["GET"]),
    Route("/api/v1/billable_metrics/{code}", get_metric, methods=["GET"]),
]
