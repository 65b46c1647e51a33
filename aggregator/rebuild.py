"""`meterline rebuild`: restore the Redis state of open periods from the PostgreSQL archive.

Redis is a cache of the archive (DESIGN invariant 3). Rebuilding re-applies every archived event
of the periods that can still hold state (not closed, not past their retention) through the same
planning and the same Lua script as the aggregator: the dedup marks make it idempotent, so it is
safe to run on a state that is complete, partial or empty, and while the aggregator runs (an
event applied by both counts once). It never deletes state. Run it after Redis lost data (flush,
restart without persistence); until it finishes, current usage may read low, never high.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aggregator.catalog import Scope, SubscriptionCatalog
from aggregator.model import Rejected, SubscriptionView
from aggregator.planning import period_of, plan
from core.clients import database, redis_client
from core.db.tables import subscriptions
from core.domain.lifecycle import BILLED
from core.settings import Settings
from core.usage_state.ops import STATE_RETENTION_S, Planned
from core.usage_state.redis_state import UsageState
from schemas.events import EPOCH, Event, epoch_us, moment_of

CHUNK = 2000
EVENTS_SQL = text("""
SELECT transaction_id, lago_id::text AS lago_id, code,
       (extract(epoch FROM "timestamp") * 1000000)::bigint AS ts_us, properties, precise_total_amount_cents
FROM events
WHERE organization_id = :org AND external_subscription_id = :sub AND "timestamp" >= :since
ORDER BY "timestamp", received_at
""")


@dataclass
class RebuildResult:
    subscriptions: int = 0
    events: int = 0  # archived events read
    restored: int = 0  # events that were missing from Redis and are now applied again
    skipped: dict[str, int] = field(default_factory=dict)  # archived but outside any open period


def earliest_open(view: SubscriptionView, now: datetime) -> datetime:
    """The start of the oldest period whose state can still be in Redis (retention after its end)."""
    oldest = epoch_us(now - timedelta(seconds=STATE_RETENTION_S))
    slot = period_of(oldest, view.at(oldest))
    if slot is None:
        return EPOCH
    return moment_of(slot.start_us)


async def _scopes(engine: AsyncEngine, external_id: str | None) -> list[Scope]:
    query = select(subscriptions.c.organization_id, subscriptions.c.external_id).where(
        subscriptions.c.status.in_(BILLED))
    if external_id is not None:
        query = query.where(subscriptions.c.external_id == external_id)
    async with engine.connect() as conn:
        return [(row.organization_id, row.external_id) for row in await conn.execute(query.distinct().order_by(
            subscriptions.c.organization_id, subscriptions.c.external_id))]


async def _rebuild_one(engine: AsyncEngine, state: UsageState, view: SubscriptionView, now: datetime,
                       result: RebuildResult) -> None:
    since = earliest_open(view, now)
    params = {"org": view.organization_id, "sub": view.external_id, "since": since}
    batch: list[Planned] = []
    async with engine.connect() as conn:
        rows = await conn.stream(EVENTS_SQL, params)
        async for row in rows:
            result.events += 1
            event = Event(lago_id=row.lago_id, organization_id=view.organization_id, transaction_id=row.transaction_id,
                          code=row.code, external_subscription_id=view.external_id, timestamp_us=row.ts_us,
                          received_at_us=0, properties=row.properties,
                          precise_total_amount_cents=row.precise_total_amount_cents)
            outcome = plan(event, view.at(event.timestamp_us))
            if isinstance(outcome, Rejected):
                result.skipped[outcome.reason] = result.skipped.get(outcome.reason, 0) + 1
                continue
            batch.append(outcome)
            if len(batch) >= CHUNK:
                result.restored += sum(await state.apply(batch))
                batch = []
    if batch:
        result.restored += sum(await state.apply(batch))


async def rebuild(settings: Settings, external_id: str | None = None,
                  progress: Callable[[int, int, RebuildResult], None] | None = None) -> RebuildResult:
    engine = database(settings, pool_size=2)
    redis = redis_client(settings.redis_url, timeout_s=30)
    result = RebuildResult()
    try:
        catalog = SubscriptionCatalog(engine, ttl_s=0, read_alerts=False)
        state = UsageState(redis)
        scopes = await _scopes(engine, external_id)
        now = datetime.now(UTC)
        for position in range(0, len(scopes), 500):
            views = await catalog.lookup(scopes[position:position + 500])
            for scope in scopes[position:position + 500]:
                view = views.get(scope)
                if view is not None:
                    await _rebuild_one(engine, state, view, now, result)
                    result.subscriptions += 1
                if progress is not None:
                    progress(result.subscriptions, len(scopes), result)
    finally:
        await redis.aclose()
        await engine.dispose()
    return result
