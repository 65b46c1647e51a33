"""/api/v1/subscriptions

Statuses: active, pending (subscription_at in the future; activated on time by
rater.activation), terminated (DELETE). As in Lago, reads without a `status` see active
subscriptions only; `status` (GET/DELETE one) or `status[]` (list) selects others.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db import catalog
from core.db.tables import customers, plans, subscriptions
from core.domain.lifecycle import LIVE, STATUSES
from core.domain.periods import BILLING_TIMES
from core.http import JSONResponse, not_found, ok, validation_error
from rater import serializers
from rater.activation import activate_due, terminate
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.api.customers import live_customer, upsert_customer
from rater.api.plans import live_plan
from rater.inputs import INVALID, NOT_SUPPORTED, TAKEN, Input


def subscription_query(organization_id: str) -> Select:
    return catalog.subscription_query().where(subscriptions.c.organization_id == organization_id)


async def render_extended(conn: AsyncConnection, row: Any, now: datetime | None = None) -> dict[str, Any]:
    """The subscription with its plan, as Lago answers create and get."""
    plan_row = (await conn.execute(select(plans).where(plans.c.id == row.plan_id))).one()
    charge_rows = (await catalog.plan_charges(conn, [row.plan_id]))[row.plan_id]
    return {**serializers.subscription(row, now), "plan": serializers.plan(plan_row, charge_rows),
            "applicable_usage_thresholds": []}


def wanted_statuses(request: Request, default: tuple[str, ...]) -> list[str]:
    statuses = request.query_params.getlist("status[]") or request.query_params.getlist("status")
    if any(s not in STATUSES for s in statuses):
        raise validation_error({"status": [INVALID]})
    return statuses or list(default)


async def find_subscription(conn: AsyncConnection, organization_id: str, external_id: str,
                            statuses: list[str] | tuple[str, ...] = ("active",)) -> Any:
    await activate_due(conn, subscriptions.c.organization_id == organization_id,
                       subscriptions.c.external_id == external_id)
    row = (await conn.execute(
        subscription_query(organization_id)
        .where(subscriptions.c.external_id == external_id, subscriptions.c.status.in_(statuses))
        .order_by(subscriptions.c.created_at.desc()).limit(1)
    )).one_or_none()
    if row is None:
        raise not_found("subscription")
    return row


async def reread(conn: AsyncConnection, organization_id: str, subscription_id: str) -> Any:
    """The row this transaction just terminated (no activation pass: nothing terminated activates)."""
    return (await conn.execute(subscription_query(organization_id).where(subscriptions.c.id == subscription_id))).one()


def subscription_input(data: Input) -> dict[str, Any]:
    values = {
        "external_customer_id": data.identifier("external_customer_id", required=True),
        "plan_code": data.identifier("plan_code", required=True),
        "external_id": data.identifier("external_id", required=True),
        "name": data.text("name"),
        "billing_time": data.choice("billing_time", BILLING_TIMES) or "calendar",
        "subscription_at": data.moment("subscription_at"),
        "ending_at": data.moment("ending_at"),
    }
    data.unsupported("plan_overrides")  # a per-subscription plan: meterline bills the plan as it is
    data.check()
    return values


async def create_subscription(request: Request) -> JSONResponse:
    organization_id, raw = await org_and_input(request, "subscription")
    values = subscription_input(Input(raw))
    now = datetime.now(UTC)
    subscription_at = values["subscription_at"] or now
    if values["ending_at"] is not None and values["ending_at"] <= subscription_at:
        raise validation_error({"ending_at": [INVALID]})
    active = subscription_at <= now
    async with engine(request).begin() as conn:
        plan = await live_plan(conn, organization_id, values["plan_code"])
        customer = await live_customer(conn, organization_id, values["external_customer_id"])
        if customer is None:  # Lago creates an unknown customer on the fly
            customer = await upsert_customer(conn, organization_id,
                                             {"external_id": values["external_customer_id"]})
        # a customer is billed in one currency: the first plan's, unless it was set before
        if customer.currency is None:
            await conn.execute(update(customers).where(customers.c.id == customer.id)
                               .values(currency=plan.amount_currency))
        elif customer.currency != plan.amount_currency:
            raise validation_error({"currency": ["currencies_does_not_match"]})
        try:
            async with conn.begin_nested():
                await conn.execute(subscriptions.insert().values(
                    id=new_id(), organization_id=organization_id, customer_id=customer.id, plan_id=plan.id,
                    external_id=values["external_id"], name=values["name"],
                    status="active" if active else "pending", billing_time=values["billing_time"],
                    subscription_at=subscription_at, started_at=subscription_at if active else None,
                    ending_at=values["ending_at"],
                ))
        except IntegrityError as exc:
            raise validation_error({"external_id": [TAKEN]}) from exc
        row = await find_subscription(conn, organization_id, values["external_id"], STATUSES)
        body = await render_extended(conn, row, now)
    return ok({"subscription": body})


async def update_subscription(request: Request) -> JSONResponse:
    """PUT: `name` and `ending_at`; `subscription_at` only while the subscription is pending."""
    organization_id, raw = await org_and_input(request, "subscription")
    data = Input(raw)
    changes: dict[str, Any] = {}
    if data.given("name"):
        changes["name"] = data.text("name")
    if data.given("ending_at"):
        changes["ending_at"] = data.moment("ending_at")
        if changes["ending_at"] is not None and changes["ending_at"] <= datetime.now(UTC):
            data.fail("ending_at", INVALID)
    subscription_at = data.moment("subscription_at")
    data.unsupported("plan_overrides")  # a per-subscription plan: meterline bills the plan as it is
    data.check()
    statuses = wanted_statuses(request, LIVE)
    async with engine(request).begin() as conn:
        row = await find_subscription(conn, organization_id, request.path_params["external_id"], statuses)
        if subscription_at is not None and row.status == "pending":
            changes["subscription_at"] = subscription_at
        if changes:
            await conn.execute(update(subscriptions).where(subscriptions.c.id == row.id).values(**changes))
            # found again with its activation: a subscription_at moved to the past starts it now
            row = await find_subscription(conn, organization_id, row.external_id, (row.status, "active"))
    return ok({"subscription": serializers.subscription(row)})


def termination_options(request: Request) -> None:
    """meterline invoices a termination's arrears and credits no unused fee paid in advance: the
    options asking otherwise (Lago's `on_termination_invoice=skip`, `on_termination_credit_note`
    `credit` or `refund`) are refused, never ignored."""
    params = Input(dict(request.query_params))
    if params.choice("on_termination_invoice", ("generate", "skip")) == "skip":
        params.fail("on_termination_invoice", NOT_SUPPORTED)
    if params.choice("on_termination_credit_note", ("credit", "refund", "skip")) in ("credit", "refund"):
        params.fail("on_termination_credit_note", NOT_SUPPORTED)
    params.check()


async def terminate_subscription(request: Request) -> JSONResponse:
    """DELETE: status `terminated`, `terminated_at` now. Events up to now still count (the aggregator
    keeps terminated subscriptions), and the biller closes the last, partial period."""
    organization_id = await authenticate(request)
    statuses = wanted_statuses(request, LIVE)
    termination_options(request)
    now = datetime.now(UTC)
    async with engine(request).begin() as conn:
        row = await find_subscription(conn, organization_id, request.path_params["external_id"],
                                      [s for s in statuses if s in LIVE] or ["active"])
        await terminate(conn, now, subscriptions.c.id == row.id)
        row = await reread(conn, organization_id, row.id)
    return ok({"subscription": serializers.subscription(row, now)})


async def get_subscription(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    statuses = wanted_statuses(request, ("active",))
    async with engine(request).begin() as conn:
        row = await find_subscription(conn, organization_id, request.path_params["external_id"], statuses)
        body = await render_extended(conn, row)
    return ok({"subscription": body})


async def list_subscriptions(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    page, per_page = page_params(request)
    query = (subscription_query(organization_id)
             .where(subscriptions.c.status.in_(wanted_statuses(request, ("active",))))
             .order_by(subscriptions.c.created_at.desc(), subscriptions.c.id))
    if request.query_params.get("external_customer_id"):
        query = query.where(customers.c.external_id == request.query_params["external_customer_id"],
                            customers.c.deleted_at.is_(None))
    if request.query_params.get("plan_code"):
        query = query.where(plans.c.code == request.query_params["plan_code"], plans.c.deleted_at.is_(None))
    async with engine(request).begin() as conn:
        await activate_due(conn, subscriptions.c.organization_id == organization_id)
        rows, meta = await paginate(conn, query, page, per_page)
    return ok({"subscriptions": [serializers.subscription(r) for r in rows], "meta": meta})


ROUTES = [
    Route("/api/v1/subscriptions", create_subscription, methods=["POST"]),
    Route("/api/v1/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id}", get_subscription, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id}", update_subscription, methods=["PUT"]),
    Route("/api/v1/subscriptions/{external_id}", terminate_subscription, methods=["DELETE"]),
]
