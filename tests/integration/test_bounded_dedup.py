"""Deduplication with bounded memory, through the aggregator's BatchProcessor on the real Redis and archive:
Redis keeps a period's dedup marks only as long as its state; a transaction_id sent again after that, or with
a timestamp in another period, is found in the archive and counts once all the same."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime

import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from aggregator.archive import EventArchive
from aggregator.model import SubscriptionView
from aggregator.processor import BatchProcessor, BatchResult, process_until_done
from aggregator.touched import TouchedPair
from core.clients import redis_client
from core.domain.aggregation import Metric
from core.domain.periods import BillingCycle
from core.usage_state.keys import dedup_key, totals_key
from core.usage_state.redis_state import UsageState, read_usage
from schemas.events import Event, epoch_us, event_to_message
from tests.conftest import Services
from tests.integration.test_archive import new_subscription


def months_back(now: datetime, months: int) -> datetime:
    """The 15th of the month `months` before now's, at noon UTC."""
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    return datetime(year, month + 1, 15, 12, tzinfo=UTC)


class Catalog:
    def __init__(self, view: SubscriptionView):
        self.view = view

    async def lookup(self, scopes):  # noqa: ANN001, ANN201
        return {scope: self.view if scope == (self.view.organization_id, self.view.external_id) else None
                for scope in scopes}


def test_marks_go_with_their_period_and_a_transaction_id_sent_again_later_counts_once(services: Services) -> None:
    organization = str(uuid.uuid4())
    subscription_id = new_subscription(services, organization)
    view = SubscriptionView(id=subscription_id, organization_id=organization, external_id="s", status="active",
                            cycle=BillingCycle("monthly", "calendar", date(2020, 1, 1), "UTC"),
                            metrics_by_code={"calls": Metric("m1", "calls", "count_agg", None)})
    now = datetime.now(UTC)
    # three billing periods: one five months back (past its retention: ended, and received, over 62 days ago),
    # last month's and this month's; each event received when it happened, as a live stream does
    moments = {"old": months_back(now, 5), "last": months_back(now, 1), "this": now}
    periods = {name: view.cycle.period_at(moment) for name, moment in moments.items()}

    def event(tx: str, at: datetime) -> bytes:
        return event_to_message(Event(lago_id=str(uuid.uuid4()), organization_id=organization, transaction_id=tx,
                                      code="calls", external_subscription_id="s", timestamp_us=epoch_us(at),
                                      received_at_us=min(epoch_us(at), epoch_us(now)), properties={}))

    async def nothing(_: Sequence[tuple[bytes, bytes]] | Sequence[TouchedPair]) -> None:
        return None

    async def main() -> tuple[list[BatchResult], dict[str, int], dict[str, int], list[int]]:
        engine = create_async_engine(services.sqlalchemy_url)
        redis = redis_client(services.redis_url, timeout_s=5)
        processor = BatchProcessor(Catalog(view), UsageState(redis), EventArchive(engine), nothing, nothing)
        try:
            results = [await process_until_done(processor, [event(f"{name}-{n}", moment) for n in range(10)])
                       for name, moment in moments.items()]
            marks = {name: int(await redis.scard(dedup_key(view.scope, period.key)))
                     for name, period in periods.items() if period is not None}
            before = {name: (await read_usage(redis, view.scope, ["m1"], period.key))["m1"].events_count
                      for name, period in periods.items() if period is not None}
            # copies of an old transaction_id (its marks are gone): at its own time, and now; of last month's
            # (its marks are there) with this month's time; and of this month's with last month's
            again = [await process_until_done(processor, [event("old-3", moments["old"])]),
                     await process_until_done(processor, [event("old-4", now)]),
                     await process_until_done(processor, [event("last-5", now)]),
                     await process_until_done(processor, [event("this-6", moments["last"])])]
            after = [(await read_usage(redis, view.scope, ["m1"], period.key))["m1"].events_count
                     for period in periods.values() if period is not None]
            old_state = int(await redis.exists(totals_key(view.scope, "m1", periods["old"].key)))  # type: ignore[union-attr]
            return results + again, marks, before, after + [old_state]
        finally:
            await redis.aclose()
            await engine.dispose()

    results, marks, before, after = asyncio.run(main())
    assert [(r.applied, r.duplicates, r.archived) for r in results] == [
        (10, 0, 10), (10, 0, 10), (10, 0, 10),  # each period's ten events
        (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0)]  # each copy: counted before, found in the archive
    assert marks == {"old": 0, "last": 10, "this": 10}  # the oldest period's marks went with its state
    assert before == {"old": 0, "last": 10, "this": 10}
    assert after == [0, 10, 10, 0]  # no number changed, and the old period's state did not come back
    with psycopg.connect(services.database_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT transaction_id) FROM events WHERE organization_id = %s",
                           (organization,)).fetchone()
    assert row == (30, 30)
