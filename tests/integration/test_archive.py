"""The partitioned PostgreSQL archive: first copy wins whatever its timestamp, monthly partitions."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from aggregator import archive as archive_module
from aggregator.archive import EventArchive, Stored, copy_rows
from aggregator.copy_text import copy_text
from schemas.events import Event
from tests.conftest import Services


def micros(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000


def event(org: str, sub: str, tx: str, timestamp_us: int, value: object = 1) -> Event:
    return Event(lago_id=str(uuid.uuid4()), organization_id=org, transaction_id=tx, code="calls",
                 external_subscription_id=sub, timestamp_us=timestamp_us, received_at_us=timestamp_us + 7,
                 properties={"value": value, "nested": {"ok": True}}, precise_total_amount_cents="12.5")


def store(services: Services, batch: list[Event], owners: list[tuple[str, str]] | None = None,
          new_to_redis: Sequence[bool] = (), prepared: tuple[str, str] | None = None) -> Stored:
    """One batch through a fresh EventArchive. Owners default to subscription ids with no
    closed_periods row: no period of theirs is closed."""
    async def main() -> Stored:
        engine = create_async_engine(services.sqlalchemy_url)
        try:
            return await EventArchive(engine).store(
                batch, owners or [(str(uuid.uuid5(uuid.NAMESPACE_URL, e.external_subscription_id)), "20260301T000000Z")
                                  for e in batch], new_to_redis, prepared)
        finally:
            await engine.dispose()
    return asyncio.run(main())


def store_batches(services: Services, *batches: list[Event]) -> list[int]:
    return [store(services, batch).archived for batch in batches]


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


FALLBACK = "held keys the archive already had but Redis had not"


def test_events_new_to_redis_are_copied_exactly_even_with_tabs_newlines_and_backslashes(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    org = str(uuid.uuid4())
    odd = "sub\twith\ttabs\nnewline\\back\rslash \\N"
    batch = [event(org, odd, "tx\t1\\", micros(2026, 3, 2) + 5, value="a\tb\nc\\d \"q\" \u00e9"),
             event(org, "plain", "tx-2", micros(1969, 12, 31, 23, 59) + 999_999, value=None),
             Event(lago_id=str(uuid.uuid4()), organization_id=org, transaction_id="\\.", code="c\\ode",
                   external_subscription_id="plain", timestamp_us=micros(2026, 3, 2), received_at_us=micros(2026, 3, 2),
                   properties={}, precise_total_amount_cents=None)]
    with caplog.at_level(logging.WARNING, logger="meterline.aggregator"):
        assert store(services, batch, new_to_redis=[True, True, True]) == Stored(3, [], 0)
    assert FALLBACK not in caplog.text  # copied, not inserted again with conflict checks
    assert rows(services, org) == [
        ("events_p202603", "plain", "\\.", datetime(2026, 3, 2, tzinfo=UTC), {}, None,
         datetime(2026, 3, 2, tzinfo=UTC)),
        ("events_p196912", "plain", "tx-2", datetime(1969, 12, 31, 23, 59, 0, 999_999, tzinfo=UTC),
         {"value": None, "nested": {"ok": True}}, "12.5", datetime(1969, 12, 31, 23, 59, 1, 6, tzinfo=UTC)),
        ("events_p202603", odd, "tx\t1\\", datetime(2026, 3, 2, 0, 0, 0, 5, tzinfo=UTC),
         {"value": "a\tb\nc\\d \"q\" \u00e9", "nested": {"ok": True}}, "12.5",
         datetime(2026, 3, 2, 0, 0, 0, 12, tzinfo=UTC)),
    ]


def test_a_key_redis_took_for_new_that_the_archive_had_is_not_written_twice(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    org = str(uuid.uuid4())
    first = event(org, "s", "kept", micros(2026, 3, 2), value=1)
    assert store(services, [first], new_to_redis=[True]).archived == 1
    # Redis lost its marks (a flush): both look new to it, one is archived already
    again = [event(org, "s", "kept", micros(2026, 3, 3), value=2), event(org, "s", "new", micros(2026, 3, 3), value=3)]
    with caplog.at_level(logging.WARNING, logger="meterline.aggregator"):
        assert store(services, again, new_to_redis=[True, True]) == Stored(1, [], 0)
    assert caplog.text.count(FALLBACK) == 1
    assert [(r[2], r[4]["value"]) for r in rows(services, org)] == [("kept", 1), ("new", 3)]


def test_events_redis_had_counted_are_archived_when_missing_and_once(
        services: Services, caplog: pytest.LogCaptureFixture) -> None:
    # a crash between Redis and the archive: redelivered, every event is a duplicate to Redis
    org = str(uuid.uuid4())
    assert store(services, [event(org, "s", "a", micros(2026, 3, 2))], new_to_redis=[True]).archived == 1
    batch = [event(org, "s", "a", micros(2026, 3, 2)), event(org, "s", "b", micros(2026, 3, 2))]
    with caplog.at_level(logging.WARNING, logger="meterline.aggregator"):
        assert store(services, batch, new_to_redis=[False, False]) == Stored(1, [], 0)
        assert FALLBACK not in caplog.text  # no copy was tried
        assert store(services, batch, new_to_redis=[False, True]) == Stored(0, [], 0)  # b: copied before
    assert caplog.text.count(FALLBACK) == 1  # b's copy failed on its key, the batch went the careful way
    assert [r[2] for r in rows(services, org)] == ["a", "b"]


def test_the_caller_s_copy_text_is_copied_as_given_when_every_event_is_new_and_never_otherwise(
        services: Services, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    copied: list[str] = []  # the event_keys text of each COPY

    async def spy(conn: Any, keys: str, events: str) -> None:
        copied.append(keys)
        await copy_rows(conn, keys, events)

    monkeypatch.setattr(archive_module, "copy_rows", spy)
    org = str(uuid.uuid4())
    batch = [event(org, "s", "a", micros(2026, 3, 2), value=1), event(org, "s", "b", micros(2026, 3, 2), value=2)]
    # the text the processor made of the same events while Redis ran (here with other values, to tell)
    made = copy_text([replace(e, properties={"value": 10 * n}) for n, e in enumerate(batch, 1)])
    assert store(services, batch, new_to_redis=[True, True], prepared=made) == Stored(2, [], 0)
    assert copied == [made[0]]
    assert [(r[2], r[4]["value"]) for r in rows(services, org)] == [("a", 10), ("b", 20)]
    # redelivered with one more event, the only one new to Redis: the text of all three is not copied
    again = [*batch, event(org, "s", "c", micros(2026, 3, 2), value=3)]
    with caplog.at_level(logging.WARNING, logger="meterline.aggregator"):
        assert store(services, again, new_to_redis=[False, False, True], prepared=copy_text(again)) == Stored(1, [], 0)
    assert FALLBACK not in caplog.text  # a and b were never offered to COPY again
    assert copied == [made[0], copy_text(again[2:])[0]]  # c alone, from a text of its own
    assert [(r[2], r[4]["value"]) for r in rows(services, org)] == [("a", 10), ("b", 20), ("c", 3)]


def test_a_copy_text_without_a_key_row_per_event_is_not_copied(services: Services) -> None:
    org = str(uuid.uuid4())
    batch = [event(org, "s", "a", micros(2026, 3, 2), value=1), event(org, "s", "b", micros(2026, 3, 2), value=2)]
    stale = copy_text([replace(batch[0], properties={"value": 10})])  # made for another list of events
    assert store(services, batch, new_to_redis=[True, True], prepared=stale) == Stored(2, [], 0)
    assert [(r[2], r[4]["value"]) for r in rows(services, org)] == [("a", 1), ("b", 2)]


def new_subscription(services: Services, org: str) -> str:
    """A subscription's id, with its organization, customer and plan."""
    ids = {name: str(uuid.uuid4()) for name in ("customer", "plan", "subscription")}
    with psycopg.connect(services.database_url) as conn:
        conn.execute("INSERT INTO organizations (id, name) VALUES (%s, %s)", (org, f"archive-{org}"))
        conn.execute("INSERT INTO customers (id, organization_id, external_id, sequential_id, slug) "
                     "VALUES (%s, %s, 'c', 1, 'ARC-0001-001')",
                     (ids["customer"], org))
        conn.execute("INSERT INTO plans (id, organization_id, code, name, interval, amount_cents, amount_currency) "
                     "VALUES (%s, %s, 'p', 'p', 'monthly', 0, 'USD')", (ids["plan"], org))
        conn.execute("INSERT INTO subscriptions (id, organization_id, customer_id, plan_id, external_id, status, "
                     "billing_time, subscription_at) VALUES (%s, %s, %s, %s, 's', 'active', 'calendar', now())",
                     (ids["subscription"], org, ids["customer"], ids["plan"]))
    return ids["subscription"]


def test_rows_of_a_closed_period_are_refused_whichever_way_they_come(services: Services) -> None:
    org = str(uuid.uuid4())
    early = event(org, "s", "early", micros(2026, 3, 2))
    closed = "20260301T000000Z"
    subscription = new_subscription(services, org)
    assert store(services, [early], [(subscription, closed)], [True]).archived == 1  # before the close
    with psycopg.connect(services.database_url) as conn:
        conn.execute("INSERT INTO closed_periods (subscription_id, period_key) VALUES (%s, %s)", (subscription, closed))
    batch = [early, event(org, "s", "late", micros(2026, 3, 9)), event(org, "s", "late-dup", micros(2026, 3, 9)),
             event(org, "s", "open", micros(2026, 4, 2))]
    owners = [(subscription, closed)] * 3 + [(subscription, "20260401T000000Z")]
    # early: a copy Redis had counted; late: new to Redis; late-dup: counted by Redis, never archived
    assert store(services, batch, owners, [False, True, False, True]) == Stored(
        1, [(org, "s", "late"), (org, "s", "late-dup")], 1)
    assert [r[2] for r in rows(services, org)] == ["early", "open"]
    # every event new to Redis, with the processor's text of all of them: the closed one is still refused
    fresh = [event(org, "s", "later", micros(2026, 3, 9)), event(org, "s", "open-2", micros(2026, 4, 3))]
    assert store(services, fresh, [owners[0], owners[3]], [True, True], prepared=copy_text(fresh)) == Stored(
        1, [(org, "s", "later")], 0)
    assert [r[2] for r in rows(services, org)] == ["early", "open", "open-2"]
