"""The biller: invoices every billing moment due up to an instant, then finalizes drafts whose grace ended.

`meterline bill --as-of T` runs it once as of T and replays the whole history of backdated
subscriptions; `meterline biller` runs it as of now in a loop (from each subscription's creation
day on) and delivers the webhook outbox. Whatever it missed while down is due at its next run.

A run, step by step, and what a crash between steps does:
1. read subscriptions, plans' charges and the moments already invoiced (one snapshot);
2. compute the moments due (pure, rater.billing.schedule) and group them per customer and instant
   (pure, rater.billing.grouping);
3. read the usage of every moment of a draft from the archive (one query per organization, plan and
   window); a finalized invoice's usage is read in step 4, after its periods are closed;
4. write the invoices, a batch of whole customers per transaction under their advisory locks
   (rater.billing.writer); a moment a racing biller invoiced meanwhile fails the unique key, rolls
   the batch back, and the batch is redone one group per transaction, skipping the conflicting ones;
   - crash during 4: the transaction rolls back; the next run invoices that group; groups already
     committed are skipped by their unique (subscription, billing_key);
5. finalize the drafts whose grace period ended (refresh from the archive, number, close periods);
6. mark the final invoices unpaid past their due date overdue, once each, with their webhook
   (rater.billing.payments), one transaction.
Groups of one customer are written in time order (their sequential ids follow the calendar);
customers are written concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clients import REDIS_FAILED, AnyRedis
from core.metrics import BILLER_RUNS, INVOICES_WRITTEN, STATS_KEY
from rater.billing.drafts import finalize_draft
from rater.billing.files import DocumentLinks
from rater.billing.grouping import Catalog, Group, batches, due_moments, is_final, plan_groups
from rater.billing.outbox import organizations_with_webhooks
from rater.billing.payments import mark_overdue
from rater.billing.reads import (
    UsageByMoment,
    billed_keys,
    drafts_due,
    load_catalog,
    load_subscriptions,
    prefetch_usage,
)
from rater.billing.writer import write_groups

log = logging.getLogger("meterline.biller")
BATCH_GROUPS = 100  # invoices per transaction
DELIVERY_CONNECTIONS = 8  # for webhook deliveries (rater.billing.outbox.Deliveries) and progressive invoices


@dataclass
class RunReport:
    invoices: int = 0
    skipped: int = 0  # groups another biller had invoiced first
    finalized: int = 0
    overdue: int = 0  # invoices marked overdue


async def _write_batch(engine: AsyncEngine, batch: list[Group], catalog: Catalog, as_of: datetime,
                       usage: UsageByMoment, notify: set[str], report: RunReport) -> None:
    try:
        async with engine.begin() as conn:
            written = await write_groups(conn, batch, catalog, as_of, usage, notify)
        report.invoices += written  # after the commit, and not across an await (concurrent batches)
        return
    except IntegrityError:  # a racing biller invoiced some of these moments: redo them one by one
        if len(batch) == 1:
            report.skipped += 1
            return
    for group in batch:
        await _write_batch(engine, [group], catalog, as_of, usage, notify, report)


async def _finalize(engine: AsyncEngine, invoice_id: str, report: RunReport) -> None:
    async with engine.begin() as conn:
        if await finalize_draft(conn, invoice_id):
            report.finalized += 1


async def run_once(engine: AsyncEngine, as_of: datetime, *, backdated: bool = True,
                   organization_id: str | None = None, concurrency: int = 4, clock_id: str | None = None
                   ) -> RunReport:
    """Bill every moment due by `as_of`, finalize the drafts whose grace has ended, mark what is overdue: for
    the customers of test clock `clock_id` (rater.clocks), else for those on no clock."""
    async with engine.connect() as conn:
        subs = await load_subscriptions(conn, as_of, organization_id, clock_id)
        moments = due_moments(subs, as_of, backdated)
        billed = await billed_keys(conn, sorted({sub.terms.subscription_id for sub, _ in moments}))
        catalog = await load_catalog(conn, {sub.plan_id for sub, _ in moments})
        groups = plan_groups(moments, billed)
        # drafts only: a finalized invoice reads its usage after closing its periods (writer.write_groups)
        usage = await prefetch_usage(conn, [item for group in groups if not is_final(group, as_of)
                                            for item in group.items], catalog)
        notify = await organizations_with_webhooks(conn)
    report = RunReport()
    gate = asyncio.Semaphore(concurrency)

    async def one_batch(batch: list[Group]) -> None:
        async with gate:
            await _write_batch(engine, batch, catalog, as_of, usage, notify, report)

    await asyncio.gather(*(one_batch(batch) for batch in batches(groups, BATCH_GROUPS)))
    async with engine.connect() as conn:
        drafts = await drafts_due(conn, as_of, organization_id, clock_id)

    for invoice_id in drafts:  # in due order, so a customer's sequential ids follow the calendar
        await _finalize(engine, invoice_id, report)
    async with engine.begin() as conn:
        report.overdue = await mark_overdue(conn, as_of.astimezone(UTC).date(), organization_id, clock_id)
    return report


async def organization_named(engine: AsyncEngine, id_or_name: str) -> str:
    """The id of the organization with this id or name; LookupError when there is none."""
    from sqlalchemy import String, cast, or_, select

    from core.db.tables import organizations

    async with engine.connect() as conn:
        found = (await conn.execute(select(organizations.c.id).where(or_(
            cast(organizations.c.id, String) == id_or_name, organizations.c.name == id_or_name)))).scalar_one_or_none()
    if found is None:
        raise LookupError(f"no organization {id_or_name!r}")
    return found


async def record_run(redis: AnyRedis, report: RunReport) -> None:
    """Count a loop round for Prometheus and for the ops page (which reads the `ml:stats` hash in Redis)."""
    BILLER_RUNS.inc()
    INVOICES_WRITTEN.inc(report.invoices)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hset(STATS_KEY, mapping={"biller_last_run_at": int(time.time()),
                                          "biller_last_run_invoices": report.invoices})
            pipe.hincrby(STATS_KEY, "biller_runs", 1)
            await pipe.execute()
    except REDIS_FAILED as exc:  # the ops page shows an older run; billing is unaffected
        log.warning("could not record the billing run in Redis: %s", exc)


async def listen_for_webhooks(engine: AsyncEngine, wake: asyncio.Event) -> None:
    """Set `wake` whenever a transaction queued webhooks (core.db.webhooks NOTIFYs at its commit), and once
    after each (re)connection for what was queued meanwhile; reconnects while PostgreSQL is away."""
    import psycopg

    from core.db.webhooks import WEBHOOKS_CHANNEL

    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {WEBHOOKS_CHANNEL}")
                wake.set()
                async for _ in conn.notifies():
                    wake.set()
        except Exception as exc:  # noqa: BLE001 - whatever broke the connection, the poll covers meanwhile
            log.warning("listening for queued webhooks failed, polling meanwhile: %r", exc)
            await asyncio.sleep(1.0)


async def bill_regularly(engine: AsyncEngine, bill_every_s: float,
                         on_run: Callable[[RunReport], Awaitable[None]] | None) -> None:
    """Bill as of now every `bill_every_s`. A round reads every subscription (about 0.1 ms of CPU each), so
    it runs twice a minute: invoices follow their billing moment within 30 s, which billing days do not
    need to beat. Test clocks whose advance was cut short are run again (rater.clocks)."""
    from rater.clocks import run_advancing  # rater.clocks runs run_once

    while True:
        began = time.monotonic()
        try:
            report = await run_once(engine, datetime.now(UTC), backdated=False)
            if report.invoices or report.finalized or report.overdue:
                log.info("billed: %d invoice(s) created, %d finalized, %d overdue", report.invoices,
                         report.finalized, report.overdue)
            if on_run is not None:
                await on_run(report)
        except Exception:  # the database may restart; the next round retries from durable state
            log.exception("billing round failed")
        try:  # after the real customers' round, never before it
            if await run_advancing(engine):
                log.info("test clocks left advancing were run")
        except Exception:  # noqa: BLE001 - the next round retries
            log.exception("running the test clocks left advancing failed")
        await asyncio.sleep(max(bill_every_s - (time.monotonic() - began), 0.0))


async def deliver_regularly(engine: AsyncEngine, deliver_every_s: float, links: DocumentLinks) -> None:
    """Invoice the progressive billing thresholds reached and deliver the webhook outbox as soon as a
    transaction queued webhooks (LISTEN/NOTIFY), and every `deliver_every_s` anyway (retries, a missed
    notification). Beside the billing rounds, never behind one: an alert's webhook leaves as soon as the
    aggregator committed it."""
    import httpx

    from rater.billing.outbox import Deliveries
    from rater.billing.progressive import invoice_crossings

    wake = asyncio.Event()
    listening = asyncio.ensure_future(listen_for_webhooks(engine, wake))
    try:
        async with httpx.AsyncClient() as http:
            deliveries = Deliveries(engine, http, wake.set, links)
            while True:
                wake.clear()  # a notification from now on wakes the next wait
                try:
                    progressive = await invoice_crossings(engine)
                    if progressive:
                        log.info("progressive billing: %d invoice(s) created", progressive)
                except Exception:  # noqa: BLE001 - retried next round; deliveries go on meanwhile
                    log.exception("progressive billing round failed")
                try:
                    await deliveries.start_due()
                except Exception:  # noqa: BLE001 - retried next round
                    log.exception("claiming due webhooks failed")
                with suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), deliver_every_s)
    finally:
        listening.cancel()


async def run_loop(engine: AsyncEngine, delivery_engine: Callable[[int], AsyncEngine], links: DocumentLinks,
                   bill_every_s: float = 30.0, deliver_every_s: float = 1.0, say: Callable[[str], None] = print,
                   on_run: Callable[[RunReport], Awaitable[None]] | None = None) -> None:
    """The biller process: billing rounds, and progressive invoices and webhook deliveries beside them
    (on an engine of their own, `delivery_engine(connections)`; invoices sent with links made by `links`).
    Errors are logged and the next round retries from durable state."""
    say("biller ready")
    await asyncio.gather(bill_regularly(engine, bill_every_s, on_run),
                         on_own_thread(lambda: _delivering(delivery_engine, deliver_every_s, links)))


async def _delivering(delivery_engine: Callable[[int], AsyncEngine], deliver_every_s: float,
                      links: DocumentLinks) -> None:
    engine = delivery_engine(DELIVERY_CONNECTIONS)
    try:
        await deliver_regularly(engine, deliver_every_s, links)
    finally:
        await engine.dispose()


def on_own_thread(run: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Future[None]:
    """Run a coroutine on an event loop of its own, in a daemon thread; the future fails if it does.

    The deliveries run so: a billing round computes every subscription's moments without yielding
    (~0.4 s of CPU with 3,700 subscriptions), and on the same loop an alert's webhook waited for it.
    On a thread of its own, the interpreter switches to it every few ms."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if not ended.done():
            ended.set_exception(exc) if exc is not None else ended.set_result(None)

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting loop
            loop.call_soon_threadsafe(settle, exc)
        else:
            loop.call_soon_threadsafe(settle, None)

    threading.Thread(target=main, name="webhooks", daemon=True).start()
    return ended
