"""The evaluator's exactly-once, driven directly against the running stack's Redis and PostgreSQL: the same
usage evaluated by two workers at once, again by one of them (a redelivered batch), and by a fresh one
(a restarted worker, a rebuilt Redis) fires each level once, and one evaluation crossing several levels
sends one webhook listing them all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import psycopg

from aggregator.alerts import Evaluator
from aggregator.catalog import SubscriptionCatalog
from core.clients import database, redis_client
from core.settings import load_settings
from meterline.orgs import ensure_organization
from tests.conftest import Services
from tests.e2e.invoice_support import create
from tests.e2e.test_alerts_stream import on_free_plan, send_batch, settle, users


def evaluate_concurrently(services: Services, organization_id: str, subscription_id: str
                          ) -> list[tuple[int, int]]:
    """(evaluated, fired) of: two fresh evaluators at once, the first again, then a third fresh one."""
    async def main() -> list[tuple[int, int]]:
        engine = database(load_settings(), pool_size=4)
        redis = redis_client(services.redis_url, timeout_s=5)
        try:
            views = await SubscriptionCatalog(engine).lookup([(organization_id, subscription_id)])
            view = views[(organization_id, subscription_id)]
            assert view is not None and view.watched
            period = view.cycle.period_at(datetime.now(UTC))
            assert period is not None
            period_key = period.key
            touched = {(view.id, period_key): view}
            first, second = Evaluator(engine, redis), Evaluator(engine, redis)
            results = list(await asyncio.gather(first.evaluate(touched), second.evaluate(touched)))
            results.append(await first.evaluate(touched))
            results.append(await Evaluator(engine, redis).evaluate(touched))
            return [(r.evaluated, r.fired) for r in results]
        finally:
            await redis.aclose()
            await engine.dispose()

    return asyncio.run(main())


def test_two_workers_a_redelivery_and_a_restart_fire_each_level_once_and_several_levels_in_one_webhook(
        client: httpx.Client, ingest: httpx.Client, services: Services, unique: str) -> None:
    on_free_plan(client, unique)
    send_batch(ingest, users(f"s-{unique}", "mtu", range(3_100), "u"))
    settle(client, f"c-{unique}", f"s-{unique}", 3_100)
    # created once the usage is there: no batch touches the subscription again, so only this test evaluates it
    alert: dict[str, Any] = create(client, f"/subscriptions/s-{unique}/alerts", "alert", {
        "alert_type": "billable_metric_current_usage_units", "code": "growth", "billable_metric_code": "mtu",
        "thresholds": [{"code": "first", "value": 1000}, {"code": "every", "value": 500, "recurring": True}]})
    organization_id, _ = ensure_organization(services.sqlalchemy_url, f"test-{unique}")

    outcomes = evaluate_concurrently(services, organization_id, f"s-{unique}")

    assert [evaluated for evaluated, _ in outcomes] == [1, 1, 1, 1]
    assert sum(fired for _, fired in outcomes) == 1
    assert outcomes[2:] == [(1, 0), (1, 0)]
    with psycopg.connect(services.database_url) as conn:
        rows = conn.execute("SELECT previous_value, current_value, crossed_thresholds FROM triggered_alerts "
                            "WHERE alert_id = %s", (alert["lago_id"],)).fetchall()
        queued = conn.execute("SELECT count(*) FROM webhook_deliveries WHERE webhook_type = 'alert.triggered' "
                              "AND organization_id = %s", (organization_id,)).fetchone()
    ((previous, current, crossed),) = rows
    assert (previous, current) == (Decimal(0), Decimal(3100))
    assert crossed == [{"code": "first", "value": "1000.0", "recurring": False},
                       {"code": "every", "value": "1500.0", "recurring": True},
                       {"code": "every", "value": "2000.0", "recurring": True},
                       {"code": "every", "value": "2500.0", "recurring": True},
                       {"code": "every", "value": "3000.0", "recurring": True}]
    assert queued == (0,)  # the organization has no endpoint: nothing to deliver
