"""The per-subscription advisory lock that orders closing a billing period against archiving its events.

The aggregator's archive insert holds it SHARED (aggregator/archive.py: many batches at once), the
biller holds it EXCLUSIVE in the transaction that inserts `closed_periods` and then reads the usage
it invoices. Both take their locks in the order of the lock key (the hash), so no two transactions
ever wait on each other in a cycle; the customer locks (CUSTOMER_LOCK_SEED) are a separate key
space, taken in customer order by whoever writes a customer's invoices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.tables import closed_periods

SUBSCRIPTION_LOCK_SEED = 7
CUSTOMER_LOCK_SEED = 6
CUSTOMER_NUMBERING_SEED = 8  # per organization: who gives out the next customer sequential_id
EXTERNAL_ID_SEED = 9  # per (organization, subscription external_id): who changes its plan or creates it

_CUSTOMERS = text("""
SELECT count(pg_advisory_xact_lock(hashtextextended(key, :seed)))
FROM (SELECT DISTINCT key FROM unnest(CAST(:keys AS text[])) AS key ORDER BY 1) AS ordered
""")

# One statement takes all the locks of a transaction's subscriptions, in lock-key order: the
# shared and the exclusive side must order them alike, so both come from this one text.
_SUBSCRIPTIONS = """
SELECT count({lock}(k))
FROM (SELECT DISTINCT hashtextextended(sid, :seed) AS k FROM unnest(CAST(:subs AS text[])) AS sid ORDER BY 1) o
"""
_EXCLUSIVE = text(_SUBSCRIPTIONS.format(lock="pg_advisory_xact_lock"))
_SHARED = text(_SUBSCRIPTIONS.format(lock="pg_advisory_xact_lock_shared"))


async def lock_subscriptions_exclusive(conn: AsyncConnection, subscription_ids: Iterable[str]) -> None:
    """Wait until no archive insert of these subscriptions is in flight, and keep new ones out until
    the caller's transaction ends (commit or rollback)."""
    wanted = sorted(set(subscription_ids))
    if wanted:
        await conn.execute(_EXCLUSIVE, {"subs": wanted, "seed": SUBSCRIPTION_LOCK_SEED})


async def lock_subscriptions_shared(conn: AsyncConnection, subscription_ids: Iterable[str]) -> None:
    """The archive's side: wait while a period of these subscriptions is being closed, and keep
    closes out until the caller's transaction ends; many archive inserts hold it at once."""
    wanted = sorted(set(subscription_ids))
    if wanted:
        await conn.execute(_SHARED, {"subs": wanted, "seed": SUBSCRIPTION_LOCK_SEED})


async def lock_customers(conn: AsyncConnection, customer_ids: Iterable[str]) -> None:
    """The customers' transaction-level locks, in customer order (no deadlock between billers)."""
    await conn.execute(_CUSTOMERS, {"keys": sorted(set(customer_ids)), "seed": CUSTOMER_LOCK_SEED})


async def lock_customer_numbering(conn: AsyncConnection, organization_id: str) -> None:
    """Until the caller's transaction ends, nobody else gives out this organization's next customer number."""
    await conn.execute(_CUSTOMERS, {"keys": [organization_id], "seed": CUSTOMER_NUMBERING_SEED})


async def lock_external_id(conn: AsyncConnection, organization_id: str, external_id: str) -> None:
    """Until the caller's transaction ends, nobody else creates, changes or ends this external_id's subscriptions."""
    await conn.execute(_CUSTOMERS, {"keys": [f"{organization_id}:{external_id}"], "seed": EXTERNAL_ID_SEED})


async def close_periods(conn: AsyncConnection, closing: Sequence[tuple[str, str]]) -> None:
    """Close billing periods, (subscription id, period key) each: under the subscriptions' exclusive
    locks, so that an archive insert of their events either went before (and is visible to the usage
    read after this, in the same transaction) or comes after and is refused as period_closed."""
    if closing:
        await lock_subscriptions_exclusive(conn, [subscription_id for subscription_id, _ in closing])
        await conn.execute(insert(closed_periods).on_conflict_do_nothing(),
                           [{"subscription_id": sid, "period_key": key} for sid, key in closing])
