"""Billing throughput: invoices per second closing 10,000 subscriptions' periods in one run.

1. A fresh organization with a plan (in advance, an MTU charge and a storage charge), 10,000
   customers with one subscription each (1,000 with --quick), backdated to 2020-01-01 and written
   straight into PostgreSQL (setting up is not what is measured), and 5 archived events per
   subscription in January 2020, so every invoice aggregates real archive rows.
2. One billing run of that organization as of 2020-02-01 (`rater.biller.run_once`, what
   `meterline bill --as-of` runs): every subscription's January closes, one invoice + fees each,
   finalized (grace 0), periods recorded in closed_periods.
The biller loop of the stack never touches these: it bills from a subscription's creation day on.
3. The organization and all its rows are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clients import database
from core.db.tables import billable_metrics, charges, customers, events, invoices, plans, subscriptions
from meterline.bench.run import BenchContext, forget_organization
from meterline.orgs import ensure_organization
from rater.biller import run_once

ORDER = 60
START = datetime(2020, 1, 1, tzinfo=UTC)
AS_OF = datetime(2020, 2, 1, tzinfo=UTC)
EVENTS_PER_SUBSCRIPTION = 5


def _ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


async def _catalog(conn: Any, organization_id: str, run: str) -> str:
    mtu, gb, plan_id = _ids(3)
    await conn.execute(insert(billable_metrics), [
        {"id": mtu, "organization_id": organization_id, "code": "mtu", "name": "MTU",
         "aggregation_type": "unique_count_agg", "field_name": "user_id"},
        {"id": gb, "organization_id": organization_id, "code": "gb", "name": "Storage",
         "aggregation_type": "sum_agg", "field_name": "gb"},
    ])
    await conn.execute(insert(plans).values(id=plan_id, organization_id=organization_id, code=f"bench_{run}",
                                            name="Bench", interval="monthly", amount_cents=12000,
                                            amount_currency="USD", pay_in_advance=True, trial_period=0))
    await conn.execute(insert(charges), [
        {"id": str(uuid.uuid4()), "plan_id": plan_id, "billable_metric_id": mtu, "charge_model": "graduated",
         "position": 0, "properties": {"graduated_ranges": [
             {"from_value": 0, "to_value": 2, "per_unit_amount": "0", "flat_amount": "0"},
             {"from_value": 3, "to_value": None, "per_unit_amount": "0.012", "flat_amount": "0"}]}},
        {"id": str(uuid.uuid4()), "plan_id": plan_id, "billable_metric_id": gb, "charge_model": "standard",
         "position": 1, "properties": {"amount": "0.25"}},
    ])
    return plan_id


async def _seed(engine: AsyncEngine, organization_id: str, run: str, count: int) -> None:
    async with engine.begin() as conn:
        plan_id = await _catalog(conn, organization_id, run)
        await conn.execute(text("SELECT meterline_events_partition(:moment)"), {"moment": START})
        numbered = (await conn.execute(select(func.coalesce(func.max(customers.c.sequential_id), 0))
                                       .where(customers.c.organization_id == organization_id))).scalar_one()
        for offset in range(0, count, 2000):
            size = min(2000, count - offset)
            customer_ids = _ids(size)
            await conn.execute(insert(customers), [
                {"id": cid, "organization_id": organization_id, "external_id": f"c{offset + n}", "timezone": "UTC",
                 "sequential_id": numbered + offset + n + 1, "slug": f"BEN-{numbered + offset + n + 1:03d}"}
                for n, cid in enumerate(customer_ids)])
            await conn.execute(insert(subscriptions), [
                {"id": str(uuid.uuid4()), "organization_id": organization_id, "customer_id": cid, "plan_id": plan_id,
                 "external_id": f"s{offset + n}", "status": "active", "billing_time": "calendar",
                 "subscription_at": START, "started_at": START} for n, cid in enumerate(customer_ids)])
            await conn.execute(insert(events), [
                {"organization_id": organization_id, "external_subscription_id": f"s{offset + n}",
                 "transaction_id": f"t{offset + n}-{e}", "lago_id": str(uuid.uuid4()),
                 "code": "mtu" if e % 2 == 0 else "gb", "timestamp": START + timedelta(days=3 + e),
                 "properties": {"user_id": f"u{e}", "gb": "1.5"}, "received_at": START + timedelta(days=3 + e)}
                for n in range(size) for e in range(EVENTS_PER_SUBSCRIPTION)])


async def _measure(ctx: BenchContext, count: int) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    organization_id, _ = ensure_organization(ctx.settings.sqlalchemy_url, f"bench-billing-{run}")
    engine = database(ctx.settings, pool_size=12, max_overflow=4)
    try:
        await _seed(engine, organization_id, run, count)
        began = time.perf_counter()
        report = await run_once(engine, AS_OF, organization_id=organization_id)
        elapsed = time.perf_counter() - began
        async with engine.connect() as conn:
            written = (await conn.execute(select(func.count()).where(
                invoices.c.organization_id == organization_id, invoices.c.status == "finalized"))).scalar_one()
        # the stack's biller loop reads every subscription each round: 10,000 more per run would slow it
        await asyncio.to_thread(forget_organization, ctx.settings, organization_id)
    finally:
        await engine.dispose()
    if report.invoices != count or written != count:
        raise RuntimeError(f"expected {count} invoices, the run wrote {report.invoices} ({written} finalized)")
    return {"billing_invoices_per_s": round(count / elapsed, 1), "billing_subscriptions": float(count),
            "billing_run_s": round(elapsed, 2)}


def run(ctx: BenchContext) -> dict[str, float]:
    return asyncio.run(_measure(ctx, 1_000 if ctx.quick else 10_000))
