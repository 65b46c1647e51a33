"""Current usage: `GET /customers/{id}/current_usage` (Lago's shape) and its live stream (SSE); a
subscription's lifetime usage, `GET /subscriptions/{external_id}/lifetime_usage`.

The answer is Redis state priced by the plan's charges. Redis is read with one pipelined round
trip (SCARD of the unique set, HMGET of the totals: O(1) whatever the number of MTUs); the catalog
part (customer, subscription, plan charges, metrics) comes from PostgreSQL and is cached per
process for `CATALOG_TTL_S`, so a catalog change shows within a second and the hot path makes no
database query. Negative answers (unknown customer, no active subscription) are cached as well.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from core.apikeys import authenticate
from core.clients import REDIS_FAILED
from core.db.catalog import charge_line, plan_charges, shown_usage_thresholds, subscription_query, usage_cycle
from core.db.tables import progressive_crossings, subscriptions, test_clocks
from core.db.taxes import TaxBook
from core.db.thresholds import invoiced_usage_cents
from core.domain.aggregation import MetricUsage
from core.domain.charges import ChargeLine
from core.domain.lifecycle import LIVE, STATUSES
from core.domain.periods import BillingCycle, Period
from core.domain.taxes import Tax
from core.domain.thresholds import usage_amount
from core.http import ApiError, JSONResponse, bad_request, not_allowed, not_found, ok, unavailable
from core.usage_state.redis_state import read_usage
from rater import serializers
from rater.api.common import engine, org_and_input
from rater.api.customers import live_customer
from rater.api.subscriptions import find_subscription
from rater.inputs import Input
from rater.usage import customer_usage

log = logging.getLogger("meterline.api")

CATALOG_TTL_S = 1.0
STREAM_EVERY_S = 0.25  # the stream looks at Redis (and may push) at most this often
KEEPALIVE_S = 15.0


_NOW = func.coalesce(test_clocks.c.frozen_time, func.now())  # subscription_query() joins its customer's clock


@dataclass(frozen=True)
class UsageView:
    """Everything but the Redis state needed to answer current usage for one subscription."""

    scope: str
    cycle: BillingCycle
    currency: str
    lines: tuple[ChargeLine, ...]
    metric_ids: tuple[str, ...]
    line_taxes: tuple[tuple[Tax, ...], ...] = ()  # the taxes of each line's fee (charge, plan, customer, org)
    test_clock_id: str | None = None  # its customer's clock: its now is the clock's (read at each request)


CacheKey = tuple[str, str, str]  # (organization, customer external id, subscription external id)


class UsageCatalog:
    def __init__(self, engine: AsyncEngine, ttl_s: float = CATALOG_TTL_S):
        self.engine = engine
        self.ttl_s = ttl_s
        self._cache: dict[CacheKey, tuple[UsageView | ApiError, float]] = {}

    async def view(self, key: CacheKey) -> UsageView:
        now = time.monotonic()
        entry = self._cache.get(key)
        if entry is None or entry[1] <= now:
            async with self.engine.connect() as conn:
                found = await _load_view(conn, *key)
            if len(self._cache) > 50_000:
                self._cache.clear()
            entry = (found, now + self.ttl_s)
            self._cache[key] = entry
        if isinstance(entry[0], ApiError):
            raise entry[0]
        return entry[0]


async def _load_view(conn: AsyncConnection, organization_id: str, customer_external_id: str,
                     subscription_external_id: str) -> UsageView | ApiError:
    customer = await live_customer(conn, organization_id, customer_external_id)
    if customer is None:
        return not_found("customer")
    row = (await conn.execute(subscription_query().where(
        subscriptions.c.organization_id == organization_id, subscriptions.c.customer_id == customer.id,
        subscriptions.c.external_id == subscription_external_id,
        # the one live now (its test clock's now): a downgrade's successor once its day came, an upgraded one
        # until the change
        subscriptions.c.status.in_((*LIVE, "terminated")), subscriptions.c.subscription_at <= _NOW,
        or_(subscriptions.c.terminated_at.is_(None), subscriptions.c.terminated_at > _NOW),
    ).order_by(subscriptions.c.subscription_at.desc()))).first()
    # A pending subscription is active from its subscription_at on, as the aggregator counts it, before
    # the activation loop has written the new status; the query keeps only the one live now.
    if row is None:
        return not_allowed("no_active_subscription")
    charge_rows = (await plan_charges(conn, [row.plan_id]))[row.plan_id]
    book = await TaxBook.load(conn, charge_ids=[charge.id for charge in charge_rows], plan_ids=[row.plan_id],
                              customer_ids=[customer.id], organization_ids=[organization_id])
    return usage_view(row, charge_rows, book)


def usage_view(row: Any, charge_rows: list[Any], book: TaxBook | None = None) -> UsageView:
    """The usage view of a `subscription_query()` row and its plan's charges (taxed as `book` says)."""
    lines = tuple(charge_line(charge) for charge in charge_rows)
    book = book or TaxBook()
    return UsageView(
        scope=f"{row.organization_id}:{row.external_id}", cycle=usage_cycle(row), currency=row.plan_amount_currency,
        lines=lines, metric_ids=tuple(sorted({line.metric.id for line in lines})),
        line_taxes=tuple(book.for_fee(line.charge_id, row.plan_id, row.customer_id, row.organization_id)
                         for line in lines),
        test_clock_id=row.test_clock_id,
    )


def _catalog(request: Request) -> UsageCatalog:
    state = request.app.state
    if getattr(state, "usage_catalog", None) is None:
        state.usage_catalog = UsageCatalog(engine(request))
    return state.usage_catalog


async def _request_key(request: Request) -> CacheKey:
    organization_id = await authenticate(request)
    external_subscription_id = request.query_params.get("external_subscription_id")
    if not external_subscription_id:
        raise bad_request("param is missing or the value is empty: external_subscription_id")
    return organization_id, request.path_params["external_id"], external_subscription_id


async def usage_body(request: Request, view: UsageView, now: datetime | None = None) -> dict[str, Any]:
    if now is None and view.test_clock_id is not None:
        async with engine(request).connect() as conn:
            now = (await conn.execute(select(test_clocks.c.frozen_time)
                                      .where(test_clocks.c.id == view.test_clock_id))).scalar_one()
    now = now or datetime.now(UTC)
    period = view.cycle.period_at(now)
    if period is None:  # started later today in another timezone's reckoning: nothing is due yet
        raise not_allowed("no_active_subscription")
    usage = await period_usage(request, view, period)
    return customer_usage(view.lines, usage, view.currency, period.start, period.end,
                          period.end.astimezone(ZoneInfo(view.cycle.timezone)).date(),
                          view.line_taxes if apply_taxes(request) else None)


def apply_taxes(request: Request) -> bool:
    """`apply_taxes` (true unless false), as Lago's current usage takes it."""
    value = request.query_params.get("apply_taxes", "true").lower()
    if value not in ("true", "false"):
        raise bad_request("apply_taxes must be true or false")
    return value == "true"


async def period_usage(request: Request, view: UsageView, period: Period) -> Mapping[str, MetricUsage]:
    """The usage state of a period, from Redis (503 when Redis does not answer)."""
    try:
        return await read_usage(request.app.state.redis, view.scope, view.metric_ids, period.key)
    except REDIS_FAILED as exc:
        log.warning("current usage of %s unavailable: %r", view.scope, exc)
        raise unavailable("current usage cannot be read now (Redis unreachable), retry") from exc


async def current_usage(request: Request) -> JSONResponse:
    view = await _catalog(request).view(await _request_key(request))
    return ok({"customer_usage": await usage_body(request, view)})


async def current_usage_stream(request: Request) -> StreamingResponse:
    """Server-Sent Events: the current usage now, then again whenever it changes (checked every 250 ms).

    Errors known before the stream starts (401, 400, 404, 405) are ordinary JSON answers. Once
    streaming, a subscription that stops being active ends the stream with an `error` event.
    """
    key = await _request_key(request)
    catalog = _catalog(request)
    first = await usage_body(request, await catalog.view(key))

    async def events() -> AsyncIterator[bytes]:
        body, last_sent, quiet_since = first, b"", time.monotonic()
        while True:
            payload = orjson.dumps({"customer_usage": body})
            if payload != last_sent:
                yield b"event: customer_usage\ndata: " + payload + b"\n\n"
                last_sent, quiet_since = payload, time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                yield b": keepalive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(STREAM_EVERY_S)
            if await request.is_disconnected():
                return
            try:
                body = await usage_body(request, await catalog.view(key))
            except ApiError as exc:
                yield b"event: error\ndata: " + orjson.dumps(exc.body) + b"\n\n"
                return

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def lifetime_usage(request: Request) -> JSONResponse:
    """The usage of a subscription's external_id since its first start: what was invoiced (every plan it had)
    and the current period's usage amount, with how far that amount is along its progressive billing
    thresholds. The subscription: the active one, else the external_id's newest."""
    organization_id = await authenticate(request)
    return ok({"lifetime_usage": await _lifetime_usage(request, organization_id)})


async def update_lifetime_usage(request: Request) -> JSONResponse:
    """Lago's PUT sets a historical usage amount, which meterline does not keep (it is always 0): refused
    (`not_supported`) when given; otherwise the lifetime usage, unchanged."""
    organization_id, raw = await org_and_input(request, "lifetime_usage")
    data = Input(raw)
    data.unsupported("external_historical_usage_amount_cents")
    data.check()
    return ok({"lifetime_usage": await _lifetime_usage(request, organization_id)})


async def _lifetime_usage(request: Request, organization_id: str) -> dict[str, Any]:
    async with engine(request).begin() as conn:
        try:
            row = await find_subscription(conn, organization_id, request.path_params["external_id"], STATUSES)
        except ApiError as exc:
            raise not_found("lifetime_usage") from exc
        now = row.clock_time or datetime.now(UTC)  # its customer's test clock's time when on one
        view = usage_view(row, (await plan_charges(conn, [row.plan_id]))[row.plan_id])
        thresholds = (await shown_usage_thresholds(conn, [row]))[row.id]
        invoiced = (await invoiced_usage_cents(conn, organization_id, [row.external_id]))[row.external_id]
        period = view.cycle.period_at(now) if row.status == "active" else None
        reached = [] if period is None else list((await conn.execute(
            select(progressive_crossings.c.level_cents, progressive_crossings.c.reached_at).where(
                progressive_crossings.c.subscription_id == row.id,
                progressive_crossings.c.period_key == period.key))).tuples())
    current = usage_amount(view.lines, await period_usage(request, view, period), view.currency) if period else 0
    lago_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"meterline:lifetime_usage:{organization_id}:{row.external_id}"))
    return serializers.lifetime_usage(lago_id, row, invoiced, current, now,
                                      serializers.threshold_completion(thresholds, current, reached))


# `:path`: an identifier may hold "/" (sent as %2F, it reaches the router decoded), as Lago allows
ROUTES = [
    Route("/api/v1/customers/{external_id:path}/current_usage", current_usage, methods=["GET"]),
    Route("/api/v1/customers/{external_id:path}/current_usage/stream", current_usage_stream, methods=["GET"]),
    # before the subscription routes, whose `{external_id:path}` would take it
    Route("/api/v1/subscriptions/{external_id:path}/lifetime_usage", lifetime_usage, methods=["GET"]),
    Route("/api/v1/subscriptions/{external_id:path}/lifetime_usage", update_lifetime_usage, methods=["PUT"]),
]
