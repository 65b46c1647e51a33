"""The workers' cached catalog against the stack's PostgreSQL: a view is kept while nothing changes, and read
again as soon as a committed change is announced (migration 0017, core/db/catalog_changes.py); a statement that
changes no row announces nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from aggregator.catalog import Scope, SubscriptionCatalog
from aggregator.model import SubscriptionView
from core.clients import database
from core.db.catalog_changes import CatalogChanges
from core.settings import load_settings
from meterline.orgs import ensure_organization
from tests.conftest import Services
from tests.e2e.invoice_support import create
from tests.e2e.test_alerts_stream import on_free_plan, subscribe_now


class CountingCatalog(SubscriptionCatalog):
    loads = 0

    async def _load(self, scopes: set[Scope]) -> tuple[dict[Scope, SubscriptionView], dict[Scope, datetime]]:
        self.loads += 1
        return await super()._load(scopes)


def with_catalog(test: Callable[[CountingCatalog, CatalogChanges], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        engine = database(load_settings(), pool_size=2)
        changes = CatalogChanges(engine)
        try:
            return await test(CountingCatalog(engine, changes=changes), changes)
        finally:
            await engine.dispose()

    return asyncio.run(main())


async def heard_after(changes: CatalogChanges, moment: int, count: int = 1, timeout_s: float = 10.0) -> None:
    """Until `count` notifications came after `moment`."""
    deadline = time.monotonic() + timeout_s
    while changes.now() < moment + count:
        assert time.monotonic() < deadline, "no catalog change was announced"
        await asyncio.sleep(0.01)


async def listening(changes: CatalogChanges, timeout_s: float = 10.0) -> None:
    changes.start()
    deadline = time.monotonic() + timeout_s
    while not changes.listening:
        assert time.monotonic() < deadline, "not listening for catalog changes"
        await asyncio.sleep(0.01)


def test_a_view_is_kept_until_a_change_of_its_own_is_announced_then_read_again_with_it(
        client: httpx.Client, services: Services, unique: str) -> None:
    on_free_plan(client, unique)
    subscribe_now(client, f"c-{unique}", f"other-{unique}", "free")
    organization_id, _ = ensure_organization(services.sqlalchemy_url, f"test-{unique}")
    scope = (organization_id, f"s-{unique}")

    async def test(catalog: CountingCatalog, changes: CatalogChanges) -> None:
        await listening(changes)
        first = (await catalog.lookup([scope]))[scope]
        assert first is not None and first.alerts == ()
        with psycopg.connect(services.database_url, autocommit=True) as conn:  # changes nothing: says nothing
            conn.execute("UPDATE subscriptions SET status = status WHERE false")
        await asyncio.sleep(0.3)
        assert (await catalog.lookup([scope]))[scope] is first and catalog.loads == 1

        moment = changes.now()  # another subscription's alert: not this view's change
        await asyncio.to_thread(create, client, f"/subscriptions/other-{unique}/alerts", "alert", {
            "alert_type": "billable_metric_current_usage_units", "code": "cap", "billable_metric_code": "mtu",
            "thresholds": [{"value": 1000}]})
        await heard_after(changes, moment)
        assert (await catalog.lookup([scope]))[scope] is first and catalog.loads == 1

        moment = changes.now()
        await asyncio.to_thread(create, client, f"/subscriptions/s-{unique}/alerts", "alert", {
            "alert_type": "billable_metric_current_usage_units", "code": "cap", "billable_metric_code": "mtu",
            "thresholds": [{"value": 1000}]})
        await heard_after(changes, moment)
        second = (await catalog.lookup([scope]))[scope]
        assert second is not None and [alert.thresholds[0].value for alert in second.alerts] == [1000]
        assert catalog.loads == 2

        moment = changes.now()  # a period closed, as the biller closes one
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO closed_periods (subscription_id, period_key) VALUES (%s, '20000101T000000Z')",
                         (first.id,))
        await heard_after(changes, moment)
        third = (await catalog.lookup([scope]))[scope]
        assert third is not None and "20000101T000000Z" in third.closed_period_keys and catalog.loads == 3

        moment = changes.now()  # the plan's charges: every subscription of the organization
        response = await asyncio.to_thread(client.put, "/plans/free", json={"plan": {"charges": [
            {"billable_metric_code": "mtu", "charge_model": "standard", "properties": {"amount": "0.5"}}]}})
        assert response.status_code == 200, response.text
        await heard_after(changes, moment)
        fourth = (await catalog.lookup([scope]))[scope]
        assert fourth is not None and [line.properties for line in fourth.lines] == [{"amount": "0.5"}]
        assert catalog.loads == 4

    with_catalog(test)


def test_without_the_notifications_a_view_is_trusted_half_a_second(
        client: httpx.Client, services: Services, unique: str) -> None:
    on_free_plan(client, unique)
    organization_id, _ = ensure_organization(services.sqlalchemy_url, f"test-{unique}")
    scope = (organization_id, f"s-{unique}")

    async def test(catalog: CountingCatalog, changes: CatalogChanges) -> None:
        catalog.changes = None  # no listening at all
        await catalog.lookup([scope])
        await catalog.lookup([scope])
        assert catalog.loads == 1
        await asyncio.sleep(0.6)
        await catalog.lookup([scope])
        assert catalog.loads == 2

    with_catalog(test)


def test_a_subscription_starting_later_on_a_used_external_id_is_seen_from_its_start(
        client: httpx.Client, services: Services, unique: str) -> None:
    """Nothing announces that a pending subscription's start has come (until the activation writes it): the view
    of its external_id, the terminated one before it, is kept only until then."""
    on_free_plan(client, unique)
    organization_id, _ = ensure_organization(services.sqlalchemy_url, f"test-{unique}")
    scope = (organization_id, f"s-{unique}")
    assert client.delete(f"/subscriptions/s-{unique}").status_code == 200
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    later = create(client, "/subscriptions", "subscription", {
        "external_customer_id": f"c-{unique}", "plan_code": "free", "external_id": f"s-{unique}",
        "subscription_at": starts.isoformat().replace("+00:00", "Z")})
    assert later["status"] == "pending"

    async def test(catalog: CountingCatalog, changes: CatalogChanges) -> None:
        await listening(changes)
        before = (await catalog.lookup([scope]))[scope]
        assert before is not None and before.status == "terminated" and catalog.loads == 1
        assert (await catalog.lookup([scope]))[scope] is before and catalog.loads == 1
        await asyncio.sleep((starts - datetime.now(UTC)).total_seconds() + 0.05)
        after = (await catalog.lookup([scope]))[scope]
        assert after is not None and (after.id, after.status) == (later["lago_id"], "active")
        assert after.predecessor is not None and after.predecessor.id == before.id

    with_catalog(test)


def test_the_aggregators_catalog_knows_which_subscriptions_have_alerts_without_reading_them(
        client: httpx.Client, services: Services, unique: str) -> None:
    on_free_plan(client, unique)
    subscribe_now(client, f"c-{unique}", f"other-{unique}", "free")
    create(client, f"/subscriptions/s-{unique}/alerts", "alert", {
        "alert_type": "billable_metric_current_usage_units", "code": "cap", "billable_metric_code": "mtu",
        "thresholds": [{"value": 1000}]})
    organization_id, _ = ensure_organization(services.sqlalchemy_url, f"test-{unique}")
    alerted, other = (organization_id, f"s-{unique}"), (organization_id, f"other-{unique}")

    async def test(catalog: CountingCatalog, changes: CatalogChanges) -> None:
        catalog.read_alerts = False  # as the aggregators' (aggregator/app.py)
        views = await catalog.lookup([alerted, other])
        assert views[alerted] is not None and views[alerted].alerted and views[alerted].alerts == ()
        assert views[alerted].watched  # its pairs are announced to the alerts workers
        assert views[other] is not None and not views[other].alerted and not views[other].watched
        catalog.read_alerts = True  # as the alerts workers'
        views = await catalog.refresh([alerted, other])
        assert views[alerted] is not None and [alert.thresholds[0].value for alert in views[alerted].alerts] == [1000]
        assert views[alerted].alerted and views[other] is not None and not views[other].watched

    with_catalog(test)
