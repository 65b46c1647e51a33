"""The partitioned PostgreSQL archive: first copy wins whatever its timestamp, monthly partitions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from aggregator.archive import EventArchive
from schemas.events import Event
from tests.conftest import Services


def micros(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000


def event(org: str, sub: str, tx: str, timestamp_us: int, value: object = 1) -> Event:
    return Event(lago_id=str(uuid.uuid4()), organization_id=org, transaction_id=tx, code="calls",
                 external_subscription_id=sub, timestamp_us=timestamp_us, received_at_us=timestamp_us + 7,
                 properties={"value": value, "nested": {"ok": True}}, precise_total_amount_cents="12.5")


def store_batches(services: Services, *batches: list[Event]) -> list[int]:
    async def main() -> list[int]:
        engine = create_async_engine(services.sqlalchemy_url)
        try:
            archive = EventArchive(engine)
            # no closed period: owners are subscription ids with no closed_periods row
            return [(await archive.store(batch, [(str(uuid.uuid5(uuid.NAMESPACE_URL, e.external_subscription_id)),
                                                   "20260301T000000Z") for e in batch])).archived
                    for batch in batches]
        finally:
            await engine.dispose()
    return asyncio.run(main())


def rows(services: Services, org: str) -> list[tuple[object, ...]]:
    with psycopg.connect(services.database_url) as conn:
        return conn.execute(
            "SELECT tableoid::regclass::text, external_subscription_id, transaction_id, \"timestamp\", properties, "
            "precise_total_amount_cents, received_at FROM events WHERE organization_id = %s "
            "ORDER BY external_subscription_id, transaction_id", (org,)).fetchall()


def test_first_copy_wins_whatever_its_timestamp(services: Services) -> None:
    org = str(uuid.uuid4())
    first = [event(org, "a", "tx-1", micros(2026, 3, 31, 23, 59), value=1),
             event(org, "a", "tx-2", micros(2026, 4, 1), value=2)]
    # later copies: same transaction in another month, and in the same month with another value
    later = [event(org, "a", "tx-1", micros(2026, 5, 15), value=99),
             event(org, "a", "tx-2", micros(2026, 4, 1), value=98),
             event(org, "b", "tx-1", micros(2026, 5, 15), value=3)]  # another subscription: another event
    assert store_batches(services, first, later, later) == [2, 1, 0]
    found = rows(services, org)
    assert [(r[0], r[1], r[2], r[4]["value"]) for r in found] == [
        ("events_p202603", "a", "tx-1", 1), ("events_p202604", "a", "tx-2", 2), ("events_p202605", "b", "tx-1", 3),
    ]
    assert found[0][3] == datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
    assert found[0][4] == {"value": 1, "nested": {"ok": True}}
    assert found[0][5] == "12.5"
    assert found[0][6] == datetime(2026, 3, 31, 23, 59, 0, 7, tzinfo=UTC)


def test_a_far_month_gets_its_own_partition_and_microseconds_are_kept(services: Services) -> None:
    org = str(uuid.uuid4())
    moment = micros(2031, 7, 4, 10, 30) + 123_456
    assert store_batches(services, [event(org, "s", "far", moment)]) == [1]
    [row] = rows(services, org)
    assert row[0] == "events_p203107"
    assert row[3] == datetime(2031, 7, 4, 10, 30, 0, 123_456, tzinfo=UTC)


def test_unique_key_is_enforced_by_event_keys(services: Services) -> None:
    org = str(uuid.uuid4())
    store_batches(services, [event(org, "s", "k", micros(2026, 6, 1))])
    with psycopg.connect(services.database_url) as conn:
        keys = conn.execute("SELECT count(*) FROM event_keys WHERE organization_id = %s", (org,)).fetchone()
        try:
            conn.execute("INSERT INTO event_keys VALUES (%s, 's', 'k', now())", (org,))
            raise AssertionError("a second key row was accepted")
        except psycopg.errors.UniqueViolation:
            pass
    assert keys == (1,)
