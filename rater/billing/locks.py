"""The per-subscription advisory lock that orders closing a billing period against archiving its events.

The aggregator's archive insert holds it SHARED (aggregator/archive.py: many batches at once), the
biller holds it EXCLUSIVE in the transaction that inserts `closed_periods` and then reads the usage
it invoices. Both take their locks in the order of the lock key (the hash), so no two transactions
ever wait on each other in a cycle; the customer locks (seed 6) are a separate key space.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SUBSCRIPTION_LOCK_SEED = 7

_EXCLUSIVE = text("""
SELECT count(pg_advisory_xact_lock(k))
FROM (SELECT DISTINCT hashtextextended(sid, :seed) AS k FROM unnest(CAST(:subs AS text[])) AS sid ORDER BY 1) o
""")


async def lock_subscriptions_exclusive(conn: AsyncConnection, subscription_ids: Iterable[str]) -> None:
    """Wait until no archive insert of these subscriptions is in flight, and keep new ones out until
    the caller's transaction ends (commit or rollback)."""
    wanted = sorted(set(subscription_ids))
    if wanted:
        await conn.execute(_EXCLUSIVE, {"subs": wanted, "seed": SUBSCRIPTION_LOCK_SEED})
