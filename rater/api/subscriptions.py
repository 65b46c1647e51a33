"""/api/v1/subscriptions"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from meterline.apikeys import authenticate
from meterline.http import JSONResponse, not_found, ok, validation_error
from rater import serializers
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.api.customers import upsert_customer
from rater.inputs import TAKEN, Input
from rater.periods import BILLING_TIMES, period_containing
from rater.tables import customers, plans, subscriptions


def subscription_query(organization_id: str) -> Select:
    return (
        select(subscriptions,
               customers.c.external_id.label("external_customer_id"), customers.c.timezone,
               plans.c.code.label("plan_code"), plans.c.amount_cents.label("plan_amount_cents"),
               plans.c.amount_currency.label("plan_amount_currency"), plans.c.interval,
               plans.c.trial_period)
        .join(customers, customers.c.id == subscriptions.c.customer_id)
        .join(plans, plans.c.id == subscriptions.c.plan_id)
        .where(subscriptions.c.organization_id == organization_id)
    )


def render(row: Any, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    start = end = trial_end = None
    if row.started_at is not None:
        timezone = row.timezone or "UTC"
        moment = min(now, row.terminated_at) if row.terminated_at else now
        period = period_containing(moment, interval=row.interval, billing_time=row.billing_time,
                                   started_on=row.started_at.astimezone(ZoneInfo(timezone)).date(),
                                   timezone=timezone)
        if period is not None:
            start, end = period.start, period.end - timedelta(milliseconds=1)
        if row.trial_period:
            ends = row.started_at + timedelta(days=row.trial_period)
            trial_end = ends if ends <= now else None
    return serializers.subscription(row, start, end, trial_end)


async def find_subscription(conn: AsyncConnection, organization_id: str, external_id: str) -> Any:
    row = (await conn.execute(
        subscription_query(organization_id).where(subscriptions.c.external_id == external_id)
        .order_by(subscriptions.c.created_at.desc()).limit(1)
    )).one_or_none()
    if row is None:
        raise not_found("subscription")
    return row


async def create_subscription(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "subscription")
    data = Input(raw)
    external_customer_id = data.text("external_customer_id", required=True)
    plan_code = data.text("plan_code", required=True)
    external_id = data.text("external_id", required=True)
    name = data.text("name")
    billing_time = data.choice("billing_time", BILLING_TIMES) or "calendar"
    now = datetime.now(UTC)
    subscription_at = data.moment("subscription_at") or now
    data.check()
    active = subscription_at <= now
    async with engine(request).begin() as conn:
        plan_id = (await conn.execute(select(plans.c.id).where(
            plans.c.organization_id == organization_id, plans.c.code == plan_code
        ))).scalar_one_or_none()
        if plan_id is None:
            raise not_found("plan")
        customer_id = (await conn.execute(select(customers.c.id).where(
            customers.c.organization_id == organization_id, customers.c.external_id == external_customer_id
        ))).scalar_one_or_none()
        if customer_id is None:
            customer_id = (await upsert_customer(conn, organization_id, {"external_id": external_customer_id})).id
        try:
            async with conn.begin_nested():
                await conn.execute(subscriptions.insert().values(
                    id=new_id(), organization_id=organization_id, customer_id=customer_id, plan_id=plan_id,
                    external_id=external_id, name=name, status="active" if active else "pending",
                    billing_time=billing_time, subscription_at=subscription_at,
                    started_at=subscription_at if active else None,
                ))
        except IntegrityError as exc:
            raise validation_error({"external_id": [TAKEN]}) from exc
        row = await find_subscription(conn, organization_id, external_id)
    return ok({"subscription": render(row, now)})


async def get_subscription(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    async with engine(request).connect() as conn:
        row = await find_subscription(conn, organization_id, request.path_params["external_id"])
    return ok({"subscription": render(row)})


async def list_subscriptions(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = subscription_query(organization_id).order_by(subscriptions.c.created_at.desc(), subscriptions.c.id)
    if request.query_params.get("external_customer_id"):
        query = query.where(customers.c.external_id == request.query_params["external_customer_id"])
    statuses = request.query_params.getlist("status[]") or request.query_params.getlist("status")
    if statuses:
        query = query.where(subscriptions.c.status.in_(statuses))
    async with engine(request).connect() as conn:
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"subscriptions": [render(r) for r in rows], "meta": meta})


ROUTES = [
    Route("/api/v1/subscriptions", create_subscription, methods=["POST"]),
    Route("/api/v1/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id}", get_subscription, methods=["GET"]),
]
