"""Reading the event archive (the `events` table the aggregator writes) for GET /events/{transaction_id}."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db.tables import event_keys, events, subscriptions
from core.http import unavailable
from schemas.events import epoch_us, iso_ms


async def archived_event(engine: AsyncEngine, organization_id: str,
                         transaction_id: str) -> dict[str, Any] | None:
    """The event as Lago's API shows it, or None when not archived (yet) in this organization.

    A transaction_id is unique per (organization, subscription); should two subscriptions carry
    the same one, the first archived wins, as Lago returns one event.
    """
    keys = event_keys.c
    query = (
        select(events, subscriptions.c.id.label("subscription_id"), subscriptions.c.customer_id)
        .select_from(
            event_keys.join(events, and_(
                events.c.organization_id == keys.organization_id,
                events.c.external_subscription_id == keys.external_subscription_id,
                events.c.timestamp == keys.timestamp,  # the partition holding the row
                events.c.transaction_id == keys.transaction_id))
            .outerjoin(subscriptions, and_(
                subscriptions.c.organization_id == events.c.organization_id,
                subscriptions.c.external_id == events.c.external_subscription_id)))
        .where(keys.organization_id == organization_id, keys.transaction_id == transaction_id)
        .order_by(events.c.created_at, events.c.received_at)
        .limit(1)
    )
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
    except (SQLAlchemyError, OSError) as exc:
        raise unavailable("the event archive cannot be read right now, retry") from exc
    if row is None:
        return None
    return {
        "lago_id": row["lago_id"],
        "transaction_id": row["transaction_id"],
        "lago_customer_id": row["customer_id"],
        "code": row["code"],
        "timestamp": iso_ms(epoch_us(row["timestamp"])),
        "properties": row["properties"],
        "lago_subscription_id": row["subscription_id"],
        "external_subscription_id": row["external_subscription_id"],
        "precise_total_amount_cents": row["precise_total_amount_cents"],
        "created_at": iso_ms(epoch_us(row["received_at"])),
    }
