"""/api/v1/subscriptions

Statuses: active, pending (subscription_at in the future; activated on time by
rater.activation), terminated (DELETE). As in Lago, reads without a `status` see active
subscriptions only; `status` (GET/DELETE one) or `status[]` (list) selects others.

Progressive billing: `progressive_billing_disabled`, and the subscription's own thresholds
(`plan_overrides.usage_thresholds`, rater.api.usage_thresholds), which replace its plan's. A plan change
makes a subscription that has the new plan's thresholds, unless the change gives its own, and keeps
`progressive_billing_disabled` unless the change gives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.routing import Route

from core.apikeys import authenticate
from core.db import catalog
from core.db.catalog import shown_usage_thresholds
from core.db.clocks import now_for
from core.db.locks import lock_external_id
from core.db.tables import customers, plans, subscriptions
from core.db.webhooks import enqueue_webhooks
from core.domain.lifecycle import LIVE, STATUSES, UPGRADE_DELAY
from core.domain.periods import BILLING_TIMES
from core.domain.plan_changes import is_upgrade
from core.http import JSONResponse, not_found, ok, validation_error
from rater import serializers
from rater.activation import activate_due, terminate
from rater.api.common import engine, new_id, org_and_input, page_params, paginate
from rater.api.customers import live_customer, upsert_customer
from rater.api.plans import live_plan
from rater.api.usage_thresholds import replace_usage_thresholds, subscription_thresholds
from rater.billing.documents import subscription_document
from rater.inputs import INVALID, NOT_SUPPORTED, TAKEN, Input


def subscription_query(organization_id: str) -> Select:
    return catalog.subscription_query().where(subscriptions.c.organization_id == organization_id)


def wanted_statuses(request: Request, default: tuple[str, ...]) -> list[str]:
    statuses = request.query_params.getlist("status[]") or request.query_params.getlist("status")
    if any(s not in STATUSES for s in statuses):
        raise validation_error({"status": [INVALID]})
    return statuses or list(default)


def named(organization_id: str, external_id: str, statuses: Sequence[str]) -> Select:
    """The subscription with this external_id in one of `statuses`: the active one first (a scheduled
    downgrade waits next to it), then the newest."""
    return (subscription_query(organization_id)
            .where(subscriptions.c.external_id == external_id, subscriptions.c.status.in_(statuses))
            .order_by((subscriptions.c.status == "active").desc(), subscriptions.c.created_at.desc()).limit(1))


async def find_subscription(conn: AsyncConnection, organization_id: str, external_id: str,
                            statuses: Sequence[str] = ("active",)) -> Any:
    await activate_due(conn, subscriptions.c.organization_id == organization_id,
                       subscriptions.c.external_id == external_id)
    row = (await conn.execute(named(organization_id, external_id, statuses))).one_or_none()
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
        "billing_time": data.choice("billing_time", BILLING_TIMES),  # calendar unless given
        "subscription_at": data.moment("subscription_at"),
        "ending_at": data.moment("ending_at"),
        "progressive_billing_disabled": data.boolean("progressive_billing_disabled"),
        "usage_thresholds": subscription_thresholds(data),
    }
    data.check()
    return values


async def set_progressive_billing(conn: AsyncConnection, organization_id: str, subscription_id: str,
                                  disabled: bool | None, thresholds: list[dict[str, Any]] | None) -> None:
    """What was given of a subscription's progressive billing (None: not given, kept)."""
    if disabled is not None:
        await conn.execute(update(subscriptions).where(subscriptions.c.id == subscription_id)
                           .values(progressive_billing_disabled=disabled))
    if thresholds is not None:
        await replace_usage_thresholds(conn, organization_id, thresholds, subscription_id=subscription_id)


async def _live_row(conn: AsyncConnection, organization_id: str, external_id: str) -> Any:
    """The live subscription with this external_id: the active one, else a pending one (not a scheduled
    downgrade, which waits next to an active one); None when there is none. The external_id is locked
    first (a transaction advisory lock), so two changes of one subscription run one after the other and
    the second sees what the first wrote."""
    await lock_external_id(conn, organization_id, external_id)
    return (await conn.execute(named(organization_id, external_id, LIVE).with_for_update(of=subscriptions))
            ).one_or_none()


async def change_plan(conn: AsyncConnection, current: Any, plan: Any, name: str | None,
                      ending_at: datetime | None, progressive_billing_disabled: bool | None = None,
                      thresholds: list[dict[str, Any]] | None = None) -> str:
    """Move `current` to `plan`: an upgrade at once (it ends, a new subscription starts, a second from now), a
    downgrade at the end of its period (a pending successor, replacing one scheduled before). The new
    subscription has the new plan's progressive billing thresholds unless `thresholds` are given, and the
    current one's `progressive_billing_disabled` unless it is given. The id of the subscription to answer
    with: the new one for an upgrade, the current one for a downgrade."""
    # read once the external_id is locked: the change happens now (its customer's test clock's now), not when asked
    now = await now_for(conn, current.customer_id)
    await conn.execute(update(subscriptions).where(subscriptions.c.previous_subscription_id == current.id,
                                                   subscriptions.c.status == "pending")
                       .values(status="canceled", canceled_at=now))
    upgrade = is_upgrade((current.interval, current.plan_amount_cents), (plan.interval, plan.amount_cents))
    if upgrade:
        starts = now + UPGRADE_DELAY  # past the aggregator's cached views' staleness (core.domain.lifecycle)
        await conn.execute(update(subscriptions).where(subscriptions.c.id == current.id).values(
            status="terminated", terminated_at=starts, ended_by_upgrade=True, changes_at=None))
        await enqueue_webhooks(conn, current.organization_id, current.id, ["subscription.terminated"])
    else:
        period = catalog.billing_cycle(current).period_at(now)
        starts = period.end if period is not None else now
        await conn.execute(update(subscriptions).where(subscriptions.c.id == current.id).values(changes_at=starts))
    new_id_ = new_id()
    await conn.execute(subscriptions.insert().values(
        id=new_id_, organization_id=current.organization_id, customer_id=current.customer_id, plan_id=plan.id,
        external_id=current.external_id, name=name if name is not None else current.name,
        status="active" if upgrade else "pending", billing_time=current.billing_time, subscription_at=starts,
        started_at=starts if upgrade else None, previous_subscription_id=current.id,
        ending_at=ending_at if ending_at is not None else current.ending_at,  # the given end, else the current one's
        anchor_at=current.anchor_at or current.started_at or current.subscription_at, follows_previous=True,
        started_by_upgrade=upgrade, trial_ended_at=current.trial_ended_at,  # a trial ends once per chain
        progressive_billing_disabled=progressive_billing_disabled if progressive_billing_disabled is not None
        else current.progressive_billing_disabled, created_at=now))
    if thresholds:
        await replace_usage_thresholds(conn, current.organization_id, thresholds, subscription_id=new_id_)
    if upgrade:
        await enqueue_webhooks(conn, current.organization_id, new_id_, ["subscription.started"])
    return new_id_ if upgrade else current.id


async def create_subscription(request: Request) -> JSONResponse:
    """A new subscription; with the external_id of the customer's live subscription and another plan,
    a plan change (Lago's way); with its plan, that subscription unchanged. A terminated external_id
    can be used again."""
    organization_id, raw = await org_and_input(request, "subscription")
    values = subscription_input(Input(raw))
    async with engine(request).begin() as conn:
        plan = await live_plan(conn, organization_id, values["plan_code"])
        customer = await live_customer(conn, organization_id, values["external_customer_id"])
        if customer is None:  # Lago creates an unknown customer on the fly
            customer = await upsert_customer(conn, organization_id,
                                             {"external_id": values["external_customer_id"]})
        now = await now_for(conn, customer.id)  # its test clock's time when it lives on one
        subscription_at = values["subscription_at"] or now
        if values["ending_at"] is not None and values["ending_at"] <= subscription_at:
            raise validation_error({"ending_at": [INVALID]})
        active = subscription_at <= now
        # a customer is billed in one currency: the first plan's, unless it was set before
        if customer.currency is None:
            await conn.execute(update(customers).where(customers.c.id == customer.id)
                               .values(currency=plan.amount_currency))
        elif customer.currency != plan.amount_currency:
            raise validation_error({"currency": ["currencies_does_not_match"]})
        await activate_due(conn, subscriptions.c.organization_id == organization_id,
                           subscriptions.c.external_id == values["external_id"])
        current = await _live_row(conn, organization_id, values["external_id"])
        if current is not None and current.customer_id != customer.id:
            raise validation_error({"external_id": [TAKEN]})  # another customer's
        disabled, thresholds = values["progressive_billing_disabled"], values["usage_thresholds"]
        if current is not None and current.plan_id == plan.id:
            subscription_id = current.id
            await set_progressive_billing(conn, organization_id, current.id, disabled, thresholds)
        elif current is not None and current.status == "pending":  # not started yet: it takes the plan
            await conn.execute(update(subscriptions).where(subscriptions.c.id == current.id).values(plan_id=plan.id))
            subscription_id = current.id
            await set_progressive_billing(conn, organization_id, current.id, disabled, thresholds or [])
        elif current is not None:  # `subscription_at` is ignored on a change, as Lago does
            if values["billing_time"] not in (None, current.billing_time):
                raise validation_error({"billing_time": [INVALID]})  # a change keeps the billing cycle
            subscription_id = await change_plan(conn, current, plan, values["name"], values["ending_at"],
                                                disabled, thresholds)
        else:
            subscription_id = new_id()
            before = (await conn.execute(select(
                func.min(func.coalesce(subscriptions.c.anchor_at, subscriptions.c.started_at)).label("first"),
                func.max(func.coalesce(subscriptions.c.terminated_at, subscriptions.c.canceled_at)).label("ended"))
                .where(subscriptions.c.organization_id == organization_id,
                       subscriptions.c.external_id == values["external_id"],
                       subscriptions.c.customer_id == customer.id))).one()
            used_before = before.ended is not None
            # one subscription at a time (to the millisecond the API shows the end with)
            if before.ended is not None and subscription_at < before.ended.replace(
                    microsecond=before.ended.microsecond // 1000 * 1000):
                raise validation_error({"subscription_at": [INVALID]})
            try:
                async with conn.begin_nested():  # a racing request created it meanwhile
                    await conn.execute(subscriptions.insert().values(
                        id=subscription_id, organization_id=organization_id, customer_id=customer.id,
                        plan_id=plan.id, external_id=values["external_id"], name=values["name"],
                        status="active" if active else "pending", billing_time=values["billing_time"] or "calendar",
                        subscription_at=subscription_at, started_at=subscription_at if active else None,
                        ending_at=values["ending_at"], follows_previous=used_before,
                        anchor_at=before.first,  # a trial counts from the first start of that external_id
                        progressive_billing_disabled=bool(disabled),
                        created_at=now,  # what counts as backdated (rater.billing.schedule): before its clock's day
                    ))
            except IntegrityError as exc:
                raise validation_error({"external_id": [TAKEN]}) from exc
            if thresholds:
                await replace_usage_thresholds(conn, organization_id, thresholds, subscription_id=subscription_id)
            if active:
                await enqueue_webhooks(conn, organization_id, subscription_id, ["subscription.started"])
        row = await reread(conn, organization_id, subscription_id)
        body = await subscription_document(conn, row.id, now)
    return ok({"subscription": body})


async def update_subscription(request: Request) -> JSONResponse:
    """PUT: `name` and `ending_at`; `subscription_at` only while the subscription is pending; progressive
    billing (of the new subscription when the plan changes); `plan_code` changes its plan as
    `POST /subscriptions` does."""
    organization_id, raw = await org_and_input(request, "subscription")
    data = Input(raw)
    plan_code = data.identifier("plan_code")
    changes: dict[str, Any] = {}
    if data.given("name"):
        changes["name"] = data.text("name")
    if data.given("ending_at"):
        changes["ending_at"] = data.moment("ending_at")
    subscription_at = data.moment("subscription_at")
    disabled, thresholds = data.boolean("progressive_billing_disabled"), subscription_thresholds(data)
    data.check()
    statuses = wanted_statuses(request, LIVE)
    async with engine(request).begin() as conn:
        row = await find_subscription(conn, organization_id, request.path_params["external_id"], statuses)
        if changes.get("ending_at") is not None and changes["ending_at"] <= await now_for(conn, row.customer_id):
            raise validation_error({"ending_at": [INVALID]})  # in the past of its customer (or its clock)
        if plan_code is not None and row.status in LIVE:  # as POST with another plan (Lago's PUT)
            plan = await live_plan(conn, organization_id, plan_code)
            if plan.amount_currency != row.plan_amount_currency:
                raise validation_error({"currency": ["currencies_does_not_match"]})
            current = await _live_row(conn, organization_id, row.external_id)
            if current is not None and current.plan_id != plan.id:
                if current.status == "pending":
                    await conn.execute(update(subscriptions).where(subscriptions.c.id == current.id)
                                       .values(plan_id=plan.id))
                    changed = current.id
                    await set_progressive_billing(conn, organization_id, current.id, disabled, thresholds or [])
                else:
                    changed = await change_plan(conn, current, plan, changes.pop("name", None),
                                                changes.pop("ending_at", None), disabled, thresholds)
                disabled = thresholds = None  # they were the plan change's
                row = await reread(conn, organization_id, changed)
        await set_progressive_billing(conn, organization_id, row.id, disabled, thresholds)
        if subscription_at is not None and row.status == "pending":
            changes["subscription_at"] = subscription_at
        if changes:
            await conn.execute(update(subscriptions).where(subscriptions.c.id == row.id).values(**changes))
            # found again with its activation: a subscription_at moved to the past starts it now
            await activate_due(conn, subscriptions.c.id == row.id)
            row = await reread(conn, organization_id, row.id)
        body = await subscription_document(conn, row.id)  # with its plan and thresholds, as Lago answers
    return ok({"subscription": body})


def termination_options(request: Request) -> dict[str, str]:
    """Lago's options: `on_termination_invoice` `generate` (the default: an invoice of the arrears up to
    now) or `skip`; `on_termination_credit_note` `credit` (the default: the unused days of a fee paid in
    advance become a credit note) or `skip`. `refund` and `offset` pay money back, which meterline does
    not record: refused, never ignored."""
    params = Input(dict(request.query_params))
    invoice = params.choice("on_termination_invoice", ("generate", "skip")) or "generate"
    credit_note = params.choice("on_termination_credit_note", ("credit", "refund", "offset", "skip")) or "credit"
    if credit_note in ("refund", "offset"):
        params.fail("on_termination_credit_note", NOT_SUPPORTED)
    params.check()
    return {"on_termination_invoice": invoice, "on_termination_credit_note": credit_note}


async def terminate_subscription(request: Request) -> JSONResponse:
    """DELETE: an active subscription is `terminated` now (events up to now still count, and the biller
    closes its last, partial period); a pending one is `canceled`, as is a downgrade scheduled for it."""
    organization_id = await authenticate(request)
    statuses = wanted_statuses(request, LIVE)
    options = termination_options(request)
    async with engine(request).begin() as conn:
        row = await find_subscription(conn, organization_id, request.path_params["external_id"],
                                      [s for s in statuses if s in LIVE] or ["active"])
        now = await now_for(conn, row.customer_id)  # its test clock's time when its customer lives on one
        await conn.execute(update(subscriptions).where(subscriptions.c.id == row.id).values(**options))
        await terminate(conn, now, subscriptions.c.id == row.id)
        row = await reread(conn, organization_id, row.id)
        thresholds = (await shown_usage_thresholds(conn, [row]))[row.id]
    return ok({"subscription": serializers.subscription(row, now, thresholds)})


async def get_subscription(request: Request) -> JSONResponse:
    organization_id = await authenticate(request)
    statuses = wanted_statuses(request, ("active",))
    async with engine(request).begin() as conn:
        row = await find_subscription(conn, organization_id, request.path_params["external_id"], statuses)
        body = await subscription_document(conn, row.id)
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
        thresholds = await shown_usage_thresholds(conn, rows)
    return ok({"subscriptions": [serializers.subscription(r, thresholds=thresholds[r.id]) for r in rows],
               "meta": meta})


# `:path`: an identifier may hold "/" (sent as %2F, it reaches the router decoded), as Lago allows
ROUTES = [
    Route("/api/v1/subscriptions", create_subscription, methods=["POST"]),
    Route("/api/v1/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id:path}", get_subscription, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id:path}", update_subscription, methods=["PUT"]),
    Route("/api/v1/subscriptions/{external_id:path}", terminate_subscription, methods=["DELETE"]),
]
