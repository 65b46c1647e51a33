"""Subscriptions as the aggregator and the alerts worker see them, read from PostgreSQL and cached.

A cached view is kept until what it was read from changes (its subscriptions, alerts or closed periods, or
its organization's customers' timezones, metrics, plans and charges: the notifications of
core/db/catalog_changes.py), until a subscription of its scope starts (time alone changes that), and at
most `TRUST_S`; while those notifications cannot be confirmed heard, and without them (`changes=None`), for
`ttl_s` (half a second).

A pending subscription whose `subscription_at` has come counts as active (its activation may not
have been written yet); a terminated one keeps receiving events dated before `terminated_at`. An
external_id names a chain of subscriptions over time (plan changes, reuse after a termination): the
view returned is the latest, and `SubscriptionView.at` finds the one an event's timestamp falls in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from aggregator.model import SubscriptionView
from core.db.catalog import charge_line, metric, plan_charges, shown_usage_thresholds, subscription_query, usage_cycle
from core.db.catalog_changes import CatalogChanges
from core.db.sql import any_of
from core.db.tables import alerts, closed_periods, subscriptions
from core.db.thresholds import alert_thresholds, usage_threshold_values
from core.domain.lifecycle import CATALOG_TTL_S, METERED, effective_status
from core.domain.thresholds import Alert
from schemas.events import epoch_us

Scope = tuple[str, str]  # (organization_id, external_subscription_id)


def _named(scopes: set[Scope], organization_id: ColumnElement[str], external_id: ColumnElement[str]
           ) -> ColumnElement[bool]:
    """Rows of these (organization, external_id) scopes, as one `external_id = ANY(...)` per organization: a
    row-value IN of a batch's thousands of pairs took PostgreSQL seconds to plan (5,000 pairs: ~2 s) and
    failed from ~8,000 on (stack depth limit exceeded)."""
    by_org: dict[str, list[str]] = {}
    for org, external in scopes:
        by_org.setdefault(org, []).append(external)
    return or_(*(and_(organization_id == org, any_of(external_id, externals))
                 for org, externals in sorted(by_org.items())))


TRUST_S = 60.0  # the longest a view is kept while changes are announced


class SubscriptionCatalog:
    def __init__(self, engine: AsyncEngine, ttl_s: float = CATALOG_TTL_S, changes: CatalogChanges | None = None,
                 read_alerts: bool = True):
        self.engine = engine
        # False: which subscriptions have alerts, not the alerts themselves (the aggregators only announce
        # their pairs; reading 10,000 subscriptions' alerts cost a drain over them 6% of its CPU)
        self.read_alerts = read_alerts
        self.ttl_s = ttl_s
        self.changes = changes
        # scope -> (view, when it was read (monotonic), the changes' clock then, when time alone changes it)
        self._cache: dict[Scope, tuple[SubscriptionView, float, int, float]] = {}

    async def lookup(self, scopes: Iterable[Scope]) -> dict[Scope, SubscriptionView | None]:
        changes = self.changes
        if changes is not None:
            changes.start()
        moment = changes.now() if changes is not None else 0  # before the read: a change during it counts
        now = time.monotonic()
        trust = TRUST_S if changes is not None and changes.listening else self.ttl_s
        wanted = set(scopes)
        found: dict[Scope, SubscriptionView | None] = {}
        for scope in wanted:
            entry = self._cache.get(scope)
            if entry is not None and now - entry[1] < trust and now < entry[3] and (
                    changes is None or not changes.changed_since(entry[2], scope[0], scope[1])):
                found[scope] = entry[0]
        missing = wanted - found.keys()
        if missing:
            fresh, starting = await self._load(missing)
            wall = datetime.now(UTC)
            for scope in missing:
                view = fresh.get(scope)
                found[scope] = view
                if view is not None:  # an unknown subscription is asked again: it may just be created
                    starts = starting.get(scope)
                    until = now + (starts - wall).total_seconds() if starts is not None else math.inf
                    self._cache[scope] = (view, now, moment, until)
        if len(self._cache) > 100_000:
            self._cache = {s: entry for s, entry in self._cache.items() if now - entry[1] < trust}
        return found

    async def refresh(self, scopes: Iterable[Scope]) -> dict[Scope, SubscriptionView | None]:
        """`lookup` without the cache, for scopes whose cached view is known to be behind."""
        wanted = set(scopes)
        for scope in wanted:
            self._cache.pop(scope, None)
        return await self.lookup(wanted)

    async def _load(self, scopes: set[Scope]) -> tuple[dict[Scope, SubscriptionView], dict[Scope, datetime]]:
        """The views of these scopes, and for those with a subscription still to start (no notification
        will say when it does), the earliest such start."""
        query = subscription_query(plan_changes=False).where(_named(scopes, subscriptions.c.organization_id,
                                                                   subscriptions.c.external_id))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            closed: dict[str, set[str]] = {row.id: set() for row in rows}
            if closed:
                closed_rows = await conn.execute(
                    select(closed_periods.c.subscription_id, closed_periods.c.period_key)
                    .where(any_of(closed_periods.c.subscription_id, closed))
                )
                for closed_row in closed_rows:
                    closed[closed_row.subscription_id].add(closed_row.period_key)
            charges_by_plan = await plan_charges(conn, {row.plan_id for row in rows})
            thresholds = await shown_usage_thresholds(conn, rows)
            alerts_by_scope: dict[Scope, list[Alert]] = {}
            alive = and_(_named(scopes, alerts.c.organization_id, alerts.c.subscription_external_id),
                         alerts.c.deleted_at.is_(None))
            if self.read_alerts:
                for alert in await conn.execute(select(alerts).where(alive).order_by(alerts.c.created_at)):
                    alerts_by_scope.setdefault((alert.organization_id, alert.subscription_external_id), []).append(
                        Alert(alert.id, alert.alert_type, alert.billable_metric_id, alert_thresholds(alert.thresholds)))
            else:
                alerted = await conn.execute(select(alerts.c.organization_id, alerts.c.subscription_external_id)
                                             .where(alive).distinct())
                alerts_by_scope = {(row.organization_id, row.subscription_external_id): [] for row in alerted}
        metrics_by_plan = {plan_id: {charge.billable_metric_code: metric(charge) for charge in plan}
                           for plan_id, plan in charges_by_plan.items()}
        lines_by_plan = {plan_id: tuple(charge_line(charge) for charge in plan)
                         for plan_id, plan in charges_by_plan.items()}
        views: dict[Scope, SubscriptionView] = {}
        starting: dict[Scope, datetime] = {}
        now = datetime.now(UTC)  # a pending subscription counts from its subscription_at, as in the API
        # each external_id's subscriptions in the order they started, each one knowing the one before
        for row in sorted(rows, key=lambda r: (r.subscription_at, r.created_at)):
            # a customer on a test clock: as of its clock (its pending subscription starts when the clock is
            # advanced, which writes its status: the views change then)
            status = effective_status(row.status, row.subscription_at, row.clock_time or now)
            if status == "pending" and row.previous_subscription_id is not None:
                # a scheduled downgrade: in the chain already, so a view cached just before its day still
                # sends the events from that day on to it (SubscriptionView.at routes them by time)
                status = "active"
            scope = (row.organization_id, row.external_id)
            if status == "pending" and row.clock_time is None:  # not started yet: the views change when it does
                starting[scope] = min(starting.get(scope, row.subscription_at), row.subscription_at)
            if status not in METERED:  # not started yet, or canceled
                continue
            ended = row.terminated_at or row.changes_at  # a scheduled downgrade ends it then
            views[scope] = SubscriptionView(
                id=row.id, organization_id=row.organization_id, external_id=row.external_id,
                status=status, cycle=usage_cycle(row),
                metrics_by_code=metrics_by_plan[row.plan_id],
                terminated_at_us=epoch_us(ended) if ended else None,
                closed_period_keys=frozenset(closed[row.id]),
                started_at_us=epoch_us(row.started_at or row.subscription_at), predecessor=views.get(scope),
                alerted=scope in alerts_by_scope, alerts=tuple(alerts_by_scope.get(scope, ())),
                usage_thresholds=usage_threshold_values(thresholds.get(row.id, ())),
                lines=lines_by_plan[row.plan_id], currency=row.plan_amount_currency,
            )
        return views, starting
