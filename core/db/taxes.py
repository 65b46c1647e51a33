"""Reading and attaching taxes: the one home of the queries behind `tax_codes` and the taxes a fee carries
(which one applies is core.domain.taxes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db.sql import any_of
from core.db.tables import charge_taxes, customer_taxes, plan_taxes, taxes
from core.domain.taxes import Tax, applicable

LIVE = taxes.c.deleted_at.is_(None)


def tax_of(row: Any) -> Tax:
    return Tax(row.id, row.code, row.name, Decimal(row.rate), row.description)


async def taxes_by_code(conn: AsyncConnection, organization_id: str, codes: Iterable[str]) -> dict[str, Any]:
    """The organization's live taxes with these codes, by code (a code missing is not one of them)."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    rows = await conn.execute(select(taxes).where(taxes.c.organization_id == organization_id, LIVE,
                                                  any_of(taxes.c.code, wanted)))
    return {row.code: row for row in rows}


async def set_taxes(conn: AsyncConnection, links: Table, owner_id: str, tax_ids: Sequence[str]) -> None:
    """Make these the owner's taxes (a customer's, plan's or charge's): the whole set, as `tax_codes` is."""
    owner = links.c[f"{links.name.removesuffix('_taxes')}_id"]
    await conn.execute(delete(links).where(owner == owner_id))
    if tax_ids:
        await conn.execute(pg_insert(links).on_conflict_do_nothing(),
                           [{owner.name: owner_id, "tax_id": tax_id} for tax_id in dict.fromkeys(tax_ids)])


async def taxes_of(conn: AsyncConnection, links: Table, owner_ids: Iterable[str]) -> dict[str, list[Any]]:
    """The live tax rows of each owner (by code), for its `taxes` and for billing."""
    ids = sorted(set(owner_ids))
    owner = links.c[f"{links.name.removesuffix('_taxes')}_id"]
    found: dict[str, list[Any]] = {owner_id: [] for owner_id in ids}
    if not ids:
        return found
    rows = await conn.execute(select(owner.label("owner_id"), *taxes.c).join(taxes, taxes.c.id == links.c.tax_id)
                              .where(any_of(owner, ids), LIVE).order_by(taxes.c.code))
    for row in rows:
        found[row.owner_id].append(row)
    return found


async def organization_taxes(conn: AsyncConnection, organization_ids: Iterable[str]) -> dict[str, list[Any]]:
    """Each organization's default taxes (`applied_to_organization`)."""
    ids = sorted(set(organization_ids))
    found: dict[str, list[Any]] = {organization_id: [] for organization_id in ids}
    if ids:
        for row in await conn.execute(select(taxes).where(any_of(taxes.c.organization_id, ids), LIVE,
                                                          taxes.c.applied_to_organization).order_by(taxes.c.code)):
            found[row.organization_id].append(row)
    return found


@dataclass
class TaxBook:
    """The taxes that can apply to the fees of some invoices: their charges', plans', customers' and
    organizations' (read at once: `load`)."""

    charges: dict[str, list[Tax]] = field(default_factory=dict)
    plans: dict[str, list[Tax]] = field(default_factory=dict)
    customers: dict[str, list[Tax]] = field(default_factory=dict)
    organizations: dict[str, list[Tax]] = field(default_factory=dict)

    @classmethod
    async def load(cls, conn: AsyncConnection, *, charge_ids: Iterable[str | None] = (), plan_ids: Iterable[str] = (),
                   customer_ids: Iterable[str] = (), organization_ids: Iterable[str] = ()) -> TaxBook:
        def taxes_by_owner(rows: dict[str, list[Any]]) -> dict[str, list[Tax]]:
            return {owner_id: [tax_of(row) for row in found] for owner_id, found in rows.items()}

        return cls(
            taxes_by_owner(await taxes_of(conn, charge_taxes, [c for c in charge_ids if c is not None])),
            taxes_by_owner(await taxes_of(conn, plan_taxes, plan_ids)),
            taxes_by_owner(await taxes_of(conn, customer_taxes, customer_ids)),
            taxes_by_owner(await organization_taxes(conn, organization_ids)))

    def for_fee(self, charge_id: str | None, plan_id: str, customer_id: str, organization_id: str) -> tuple[Tax, ...]:
        """A usage fee's taxes (charge → plan → customer → organization); a subscription fee has no charge."""
        return applicable(self.charges.get(charge_id, []) if charge_id is not None else [],
                          self.plans.get(plan_id, []), self.customers.get(customer_id, []),
                          self.organizations.get(organization_id, []))
