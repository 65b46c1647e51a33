"""Queueing webhooks: the outbox rows a transaction writes beside the change they announce.

Any service queues (the biller, the API, the alerts worker); the biller delivers
(rater.billing.outbox). A row is due at once, or a second later when the queueing transaction commits
without waiting for its WAL flush (`synchronous_commit` off: the biller's draft-only batches,
rater.billing.writer), by when PostgreSQL has flushed it (within 3 x wal_writer_delay): a webhook is
never sent for something a crash could still take back. Each queueing transaction also NOTIFYs
`WEBHOOKS_CHANNEL` (delivered by PostgreSQL at its commit): the deliverer wakes at once instead of at
its next poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import String, cast, column, exists, func, select, text, values
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.tables import webhook_deliveries, webhook_endpoints

WEBHOOKS_CHANNEL = "meterline_webhooks"
# due at once, or a second on in a transaction whose commit does not wait for the WAL flush
_DUE = text("now() + CASE WHEN current_setting('synchronous_commit') = 'off' THEN interval '1 second' "
            "ELSE interval '0' END")


class Announcement(NamedTuple):
    """A webhook to queue for every endpoint of an organization: its type (`<object type>.<event>`), its object
    (unique per endpoint and type), and, when its event has an object of its own (a payment status change, a
    document generated), what it is about: the object it then sends (their invoice). Webhooks about one object
    are delivered in the order they were queued (rater.billing.outbox)."""

    organization_id: str
    object_id: str
    webhook_type: str
    about_id: str | None = None


async def enqueue_webhooks(conn: AsyncConnection, organization_id: str, object_id: str,
                           webhook_types: Sequence[str], about_id: str | None = None) -> None:
    """One outbox row per endpoint of the organization and webhook type about one object, in the caller's
    transaction; at most one per endpoint, type and object, ever."""
    await enqueue_announcements(conn, [Announcement(organization_id, object_id, kind, about_id)
                                       for kind in webhook_types])


async def enqueue_announcements(conn: AsyncConnection, announcements: Sequence[Announcement]) -> None:
    """`enqueue_webhooks` for several objects, of any organizations. One statement, whatever their number,
    its NOTIFY included (the alerts worker fires an evaluation's alerts with it: each statement of a
    transaction waits for the worker's event loop to come round)."""
    if not announcements:
        return
    about = values(column("organization_id", UUID(as_uuid=False)), column("object_id", UUID(as_uuid=False)),
                   column("webhook_type", String), column("about_id", UUID(as_uuid=False)),
                   name="about").data([tuple(a) for a in announcements])
    rows = select(func.gen_random_uuid(), webhook_endpoints.c.organization_id, webhook_endpoints.c.id,
                  about.c.webhook_type, about.c.object_id,
                  cast(about.c.about_id, UUID(as_uuid=False)),  # a NULL in VALUES is text to PostgreSQL
                  _DUE).select_from(
        webhook_endpoints.join(about, about.c.organization_id == webhook_endpoints.c.organization_id))
    inserted = pg_insert(webhook_deliveries).from_select(
        ["id", "organization_id", "endpoint_id", "webhook_type", "object_id", "about_id", "next_attempt_at"], rows,
    ).on_conflict_do_nothing(constraint="uq_webhook_deliveries_once").returning(webhook_deliveries.c.id).cte("inserted")
    await conn.execute(select(func.pg_notify(WEBHOOKS_CHANNEL, "")).where(exists(select(inserted.c.id))))
