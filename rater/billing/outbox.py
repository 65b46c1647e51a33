"""The webhook outbox: rows queued in the transaction that changes an invoice, a subscription or a
credit note, then delivered:
claimed, POSTed signed, their outcome recorded, failures backed off.

Order for one delivery, and what a crash between steps does:
0. only rows due (`next_attempt_at`): a row queued by a transaction that committed without waiting for
   its WAL flush (rater.billing.writer: drafts) is due a second later (core.db.webhooks), by when
   PostgreSQL has flushed it (within 3 x wal_writer_delay);
1. claim: push `next_attempt_at` a lease ahead (FOR UPDATE SKIP LOCKED, so concurrent billers
   never claim the same row) and commit;
2. POST the signed payload;  - crash here: the lease expires and the row is retried (at least once);
3. record success, or the failure with the next attempt after a backoff (failed for good after
   MAX_ATTEMPTS).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import select, text, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.db.tables import webhook_deliveries, webhook_endpoints
from core.metrics import WEBHOOK_DELIVERIES
from rater.billing.assemble import VISIBLE_STATUSES
from rater.billing.documents import (
    credit_note_document,
    invoice_document,
    subscription_document,
    triggered_alert_document,
    usage_threshold_reached_document,
)
from rater.billing.files import DocumentLinks
from rater.billing.signing import backoff, gives_up, headers

log = logging.getLogger("meterline.webhooks")
LEASE_S = 60
TIMEOUT_S = 10.0

Document = Callable[[AsyncConnection, str], Awaitable[dict[str, Any]]]
Objects = dict[str, tuple[str, Document]]


def webhook_objects(links: DocumentLinks) -> Objects:
    """What each webhook type's object is (its type, and how it is loaded), by the type's prefix or the whole
    type; an invoice with a link to its document made by `links`."""
    return {"invoice": ("invoice", functools.partial(invoice_document, links=links)),
            "subscription": ("subscription", subscription_document),
            "credit_note": ("credit_note", credit_note_document),
            "alert": ("triggered_alert", triggered_alert_document),
            "subscription.usage_threshold_reached": ("subscription", usage_threshold_reached_document)}

_CLAIM = text(f"""
UPDATE webhook_deliveries SET next_attempt_at = now() + interval '{LEASE_S} seconds'
WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id, created_at, COALESCE(about_id, object_id) AS about
""")
# deliveries in flight at once (HTTP requests; their reads and writes share the engine's connections)
IN_FLIGHT = 64


async def organizations_with_webhooks(conn: AsyncConnection) -> set[str]:
    return set((await conn.execute(select(webhook_endpoints.c.organization_id).distinct())).scalars())


class Deliveries:
    """Deliveries in flight, started as they come due: a slow endpoint (up to TIMEOUT_S an attempt) holds
    back only the webhooks about its own objects, never those queued after it for anyone else (one after
    the other, a burst of alerts left at ~25 a second, and every organization's webhooks waited behind
    an endpoint slow to answer). The webhooks about one object go one after the other, in the order they
    were queued (`invoice.drafted` before `invoice.created`, two payment status changes of an invoice).
    Each carries its object as it is when it is sent, as Lago's do."""

    def __init__(self, engine: AsyncEngine, http: httpx.AsyncClient, more_due: Callable[[], None],
                 links: DocumentLinks):
        self.engine = engine
        self.http = http
        self.objects = webhook_objects(links)
        self.more_due = more_due  # called when a slot frees after a claim that left due rows behind
        self.tails: dict[str, asyncio.Future[None]] = {}  # the last delivery started about each object
        self.running = 0
        self.capped = False

    async def start_due(self) -> int:
        """Claim what is due, as many as there are free slots, and start delivering it; how many."""
        free = IN_FLIGHT - self.running
        if free <= 0:
            self.capped = True
            return 0
        async with self.engine.begin() as conn:
            claimed = (await conn.execute(_CLAIM, {"limit": free})).all()
        self.capped = len(claimed) == free
        for row in sorted(claimed, key=lambda row: row.created_at):
            self.running += 1
            before = self.tails.get(row.about)
            delivery = asyncio.ensure_future(self._after(before, row.id))
            self.tails[row.about] = delivery
            delivery.add_done_callback(functools.partial(self._ended, row.about))
        return len(claimed)

    async def _after(self, before: asyncio.Future[None] | None, delivery_id: str) -> None:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own: logged there
        await _deliver(self.engine, self.http, delivery_id, self.objects)

    def _ended(self, object_id: str, delivery: asyncio.Future[None]) -> None:
        self.running -= 1
        if self.tails.get(object_id) is delivery:
            del self.tails[object_id]
        if not delivery.cancelled() and delivery.exception() is not None:
            # PostgreSQL away: the row's lease runs out and it is claimed again
            log.error("webhook delivery failed: %r", delivery.exception())
        if self.capped:
            self.capped = False
            self.more_due()


async def _deliver(engine: AsyncEngine, http: httpx.AsyncClient, delivery_id: str, objects: Objects) -> int:
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(webhook_deliveries, webhook_endpoints.c.webhook_url, webhook_endpoints.c.hmac_key)
            .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
            .where(webhook_deliveries.c.id == delivery_id))).one()
        object_type, load = objects.get(row.webhook_type) or objects[row.webhook_type.partition(".")[0]]
        # a webhook about another object (a payment status change, a document generated: one webhook each,
        # about the invoice) sends that object
        sent_id = row.about_id or row.object_id
        try:
            document = await load(conn, sent_id)
        except NoResultFound:  # the object is gone (a bug, or a row deleted by hand): never deliverable
            log.error("webhook %s %s: its object %s is gone", row.webhook_type, delivery_id, sent_id)
            document = None
    if document is None:
        async with engine.begin() as conn:
            await conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(
                status="failed", last_error="its object could not be loaded"))
        return 0
    if object_type == "invoice" and document["status"] not in VISIBLE_STATUSES:
        # a draft closed meanwhile ($0, its customer skipping them): never shown, so never sent
        async with engine.begin() as conn:
            await conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(
                status="dropped", last_error="the invoice was closed"))
        return 0
    body = orjson.dumps({"webhook_type": row.webhook_type, "object_type": object_type,
                         "organization_id": row.organization_id, object_type: document})
    status_code, error = None, None
    try:
        response = await http.post(row.webhook_url, content=body, headers=headers(row.hmac_key, body, row.id),
                                   timeout=TIMEOUT_S)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    attempts = row.attempts + 1
    now = datetime.now(UTC)
    if error is None:
        values = {"status": "succeeded", "delivered_at": now}
        WEBHOOK_DELIVERIES.labels(outcome="succeeded").inc()
    else:
        WEBHOOK_DELIVERIES.labels(outcome="failed" if gives_up(attempts) else "retrying").inc()
        log.info("webhook %s to %s failed (attempt %d): %s", row.webhook_type, row.webhook_url, attempts, error)
        values = {"status": "failed" if gives_up(attempts) else "pending", "next_attempt_at": now + backoff(attempts),
                  "last_error": error[:1000]}
    async with engine.begin() as conn:
        await conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(
            attempts=attempts, last_status_code=status_code, **values))
    return 1 if error is None else 0
