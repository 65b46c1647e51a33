"""Invoices aggregate the PostgreSQL archive exactly as the aggregator aggregates Redis: the archive
query (rater.billing.archive_usage) must equal `core.domain.aggregation.fold` on the same events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import create_async_engine

from aggregator.archive import EventArchive
from aggregator.planning import scaled
from core.domain.aggregation import Metric, MetricUsage, Sample, fold
from core.domain.charges import units_of
from core.domain.periods import Period
from rater.billing.archive_usage import window_usage
from schemas.events import Event
from tests.conftest import Services

PERIOD = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
WINDOW = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC))  # e.g. a termination


def micros(day: int, hour: int = 0) -> int:
    return int(datetime(2026, 3, day, hour, tzinfo=UTC).timestamp()) * 1_000_000


def events(org: str, sub: str, code: str, field: str, values: list[tuple[int, object]]) -> list[Event]:
    return [Event(lago_id=str(uuid.uuid4()), organization_id=org, transaction_id=f"{code}-{n}", code=code,
                  external_subscription_id=sub, timestamp_us=ts, received_at_us=ts,
                  properties={field: value}, precise_total_amount_cents=None)
            for n, (ts, value) in enumerate(values)]


def archive_and_read(services: Services, batch: list[Event], metrics: list[Metric], org: str, sub: str
                     ) -> dict[str, MetricUsage]:
    async def main() -> dict[str, MetricUsage]:
        engine = create_async_engine(services.sqlalchemy_url)
        try:
            await EventArchive(engine).store(batch, [(str(uuid.uuid4()), "p") for _ in batch])  # no closed period
            async with engine.connect() as conn:
                return await window_usage(conn, org, sub, WINDOW, PERIOD, metrics)
        finally:
            await engine.dispose()
    return asyncio.run(main())


def expected(kind: str, values: list[tuple[int, object]]) -> MetricUsage:
    inside = [(ts, v) for ts, v in values if ts < micros(20)]
    samples = [Sample(ts, str(v) if kind == "unique_count_agg" else scaled(v)) for ts, v in inside]  # type: ignore[arg-type]
    start_us = int(PERIOD.start.timestamp()) * 1_000_000
    return fold(kind, samples, start_us, int(PERIOD.end.timestamp()) * 1_000_000)


NUMBERS = [(micros(2), 3), (micros(5, 12), "2.5"), (micros(9), -1), (micros(9), 4.25), (micros(12), "0.000001"),
           (micros(25), 100)]  # the last is outside the window
UNIQUE = [(micros(2), "u1"), (micros(3), "u1"), (micros(4), 7), (micros(5), True), (micros(6), 1.5),
          (micros(7), 2.0), (micros(8), "2.0"), (micros(21), "late")]


def test_every_aggregation_agrees_with_the_aggregators_fold(services: Services) -> None:
    org, sub = str(uuid.uuid4()), "sub-archive"
    kinds = ("count_agg", "sum_agg", "max_agg", "latest_agg", "weighted_sum_agg")
    metrics = [Metric(str(uuid.uuid4()), kind, kind, None if kind == "count_agg" else "v") for kind in kinds]
    metrics.append(Metric(str(uuid.uuid4()), "unique", "unique_count_agg", "user_id"))
    batch = [e for kind in kinds for e in events(org, sub, kind, "v", NUMBERS)]
    batch += events(org, sub, "unique", "user_id", UNIQUE)

    found = archive_and_read(services, batch, metrics, org, sub)

    for metric in metrics:  # what pricing reads: the units of the aggregation, and the events count
        kind = metric.aggregation_type
        reference = expected(kind, UNIQUE if kind == "unique_count_agg" else NUMBERS)
        assert units_of(kind, found[metric.id]) == units_of(kind, reference), kind
        assert found[metric.id].events_count == reference.events_count, kind
    by_kind = {m.aggregation_type: found[m.id] for m in metrics}
    assert by_kind["count_agg"].events_count == 5
    assert by_kind["sum_agg"].sum == Decimal("8.750001")
    assert by_kind["max_agg"].max == Decimal("4.25")
    assert by_kind["latest_agg"].latest == Decimal("0.000001")
    assert by_kind["weighted_sum_agg"].weighted_sum == Decimal("7.451614")
    # str() of the values: "u1", "7", "True", "1.5", "2.0" (the number 2.0 and the text "2.0" are one value)
    assert by_kind["unique_count_agg"].unique_count == 5
