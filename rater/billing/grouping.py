"""Which invoices a billing run writes: the moments due, grouped per customer and instant. Pure.

A group is what one invoice bills: a customer's moments (of all its subscriptions in one currency)
due at one instant. It is finalized when written if its grace period ended by the run's `as_of`,
else written as a draft that the biller finalizes once the grace period ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.domain.charges import ChargeLine
from rater.billing.assemble import PlanItem
from rater.billing.schedule import Due, Terms, creation_day_start, due_until, since_creation_day

Catalog = dict[str, list[ChargeLine]]  # plan id -> its charges, in the plan's order


@dataclass(frozen=True)
class Subscribed:
    """A subscription as billing sees it."""

    terms: Terms
    organization_id: str
    organization_name: str
    external_id: str
    plan_id: str
    plan: PlanItem
    currency: str
    grace_days: int
    payment_term_days: int = 0  # the customer's net_payment_term
    finalize_zero_amount: bool = True  # the customer's finalize_zero_amount_invoice is not `skip`


@dataclass
class Group:
    """What one invoice bills: the moments of one customer due at one instant."""

    organization_id: str
    organization_name: str
    customer_id: str
    currency: str
    at: datetime
    timezone: str
    grace_days: int
    items: list[tuple[Subscribed, Due]]
    payment_term_days: int = 0
    finalize_zero_amount: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def issuing_date(self) -> date:
        return self.at.astimezone(self.zone).date()

    @property
    def skipped(self) -> bool:
        """Only terminations whose subscriptions asked for no invoice (`on_termination_invoice=skip`)."""
        return all(due.kind == "termination" and not sub.terms.invoices_termination for sub, due in self.items)


def grace_until(group: Group) -> datetime:
    """When the group's invoice stops being a draft: the end of the customer's grace period."""
    return group.at + timedelta(days=group.grace_days)


def is_final(group: Group, as_of: datetime) -> bool:
    """Whether the group's invoice is final when written: its grace period ended by `as_of`, or it is
    never shown (skipped terminations) and has nothing to wait for."""
    return group.skipped or grace_until(group) <= as_of


def payment_due_date(issuing_date: date, payment_term_days: int) -> date:
    """When an invoice is due: `net_payment_term` days after it is issued."""
    return issuing_date + timedelta(days=payment_term_days)


def due_moments(subs: Sequence[Subscribed], as_of: datetime, backdated: bool) -> list[tuple[Subscribed, Due]]:
    """Every moment due by `as_of` (from each subscription's creation day on, unless `backdated`)."""
    found = []
    for sub in subs:
        if backdated:
            moments = due_until(sub.terms, as_of)
        else:
            moments = since_creation_day(sub.terms, due_until(sub.terms, as_of, creation_day_start(sub.terms)))
        found += [(sub, due) for due in moments]
    return found


def plan_groups(moments: Sequence[tuple[Subscribed, Due]], billed: set[tuple[str, str]]) -> list[Group]:
    """The groups to invoice: each customer's unbilled moments, one group per (currency, instant), each group's
    subscriptions in the order they started (a plan change: the one ending, then the one starting), whatever
    order they were read in."""
    groups: dict[tuple[str, str, datetime], Group] = {}
    for sub, due in sorted(moments, key=lambda item: (item[0].terms.started_at, item[0].terms.subscription_id)):
        if (sub.terms.subscription_id, due.billing_key) in billed:
            continue
        key = (sub.terms.customer_id, sub.currency, due.at)
        if key not in groups:
            groups[key] = Group(sub.organization_id, sub.organization_name, sub.terms.customer_id, sub.currency,
                                due.at, sub.terms.timezone, sub.grace_days, [], sub.payment_term_days,
                                sub.finalize_zero_amount)
        groups[key].items.append((sub, due))
    return sorted(groups.values(), key=lambda g: (g.customer_id, g.at))


def batches(groups: Sequence[Group], size: int) -> list[list[Group]]:
    """Consecutive groups cut into batches of about `size`, never splitting one customer's groups
    (they must be written in order, by one transaction after the other)."""
    cut: list[list[Group]] = []
    for group in groups:
        if cut and (len(cut[-1]) < size or cut[-1][-1].customer_id == group.customer_id):
            cut[-1].append(group)
        else:
            cut.append([group])
    return cut
