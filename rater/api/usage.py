"""GET /api/v1/customers/{external_id}/current_usage — read from Redis, priced on the fly."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from starlette.requests import Request
from starlette.routing import Route

from aggregator.redis_state import read_usage
from meterline.apikeys import authenticate
from meterline.http import JSONResponse, bad_request, not_allowed, not_found, ok
from rater.api.common import engine
from rater.api.plans import plan_charges
from rater.api.subscriptions import subscription_query
from rater.periods import period_containing
from rater.tables import billable_metrics, customers, subscriptions
from rater.usage import ChargeLine, customer_usage


async def current_usage(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    external_subscription_id = request.query_params.get("external_subscription_id")
    if not external_subscription_id:
        raise bad_request("param is missing or the value is empty: external_subscription_id")
    async with engine(request).connect() as conn:
        customer_id = (await conn.execute(select(customers.c.id).where(
            customers.c.organization_id == organization_id,
            customers.c.external_id == request.path_params["external_id"],
            customers.c.deleted_at.is_(None),  # a deleted customer's external_id may be reused
        ))).scalar_one_or_none()
        if customer_id is None:
            raise not_found("customer")
        row = (await conn.execute(subscription_query(organization_id).where(
            subscriptions.c.customer_id == customer_id,
            subscriptions.c.external_id == external_subscription_id,
            subscriptions.c.status == "active",
        ))).one_or_none()
        if row is None:
            raise not_allowed("no_active_subscription")
        charge_rows = (await plan_charges(conn, [row.plan_id]))[row.plan_id]
        metric_rows = {m.id: m for m in (await conn.execute(select(billable_metrics).where(
            billable_metrics.c.id.in_([c.billable_metric_id for c in charge_rows])
        ))).all()} if charge_rows else {}
    timezone = row.timezone or "UTC"
    now = datetime.now(UTC)
    period = period_containing(now, interval=row.interval, billing_time=row.billing_time,
                               started_on=row.started_at.astimezone(ZoneInfo(timezone)).date(), timezone=timezone)
    if period is None:
        raise not_allowed("no_active_subscription")
    lines = [
        ChargeLine(c.id, c.charge_model, c.properties, c.invoice_display_name, c.billable_metric_id,
                   metric_rows[c.billable_metric_id].name, metric_rows[c.billable_metric_id].code,
                   metric_rows[c.billable_metric_id].aggregation_type)
        for c in charge_rows
    ]
    usage = await read_usage(request.app.state.redis, f"{organization_id}:{row.external_id}",
                             sorted({line.metric_id for line in lines}), period.key)
    body = customer_usage(lines, usage, row.plan_amount_currency, period.start, period.end,
                          period.end.astimezone(ZoneInfo(timezone)).date())
    return ok({"customer_usage": body})


ROUTES = [Route("/api/v1/customers/{external_id}/current_usage", current_usage, methods=["GET"])]
