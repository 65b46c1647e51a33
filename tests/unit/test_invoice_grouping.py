"""Which invoices a billing run writes (rater.billing.grouping: plan_groups, batches). Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime

from rater.billing.assemble import PlanItem, voidable
from rater.billing.grouping import Subscribed, batches, due_moments, payment_due_date, plan_groups
from rater.billing.schedule import Terms


def subscribed(sub: str, customer: str, start: datetime, billing_time: str = "calendar") -> Subscribed:
    terms = Terms(sub, customer, start, datetime(2026, 1, 1, tzinfo=UTC), "monthly", billing_time, "UTC", False,
                  1000, 0, None)
    return Subscribed(terms, "org", "Org", f"ext-{sub}", "plan", PlanItem("p", "P", None), "USD", 0)


def test_one_invoice_per_customer_per_billing_day_holding_all_its_subscriptions() -> None:
    subs = [subscribed("a1", "alice", datetime(2026, 1, 3, tzinfo=UTC)),
            subscribed("a2", "alice", datetime(2026, 1, 20, tzinfo=UTC)),
            subscribed("a3", "alice", datetime(2026, 1, 10, tzinfo=UTC), billing_time="anniversary"),
            subscribed("b1", "bob", datetime(2026, 1, 3, tzinfo=UTC))]
    groups = plan_groups(due_moments(subs, datetime(2026, 3, 1, tzinfo=UTC), backdated=True), set())
    summary = [(g.customer_id, g.at.date().isoformat(), sorted(s.terms.subscription_id for s, _ in g.items))
               for g in groups]
    assert summary == [
        ("alice", "2026-02-01", ["a1", "a2"]),
        ("alice", "2026-02-10", ["a3"]),
        ("alice", "2026-03-01", ["a1", "a2"]),
        ("bob", "2026-02-01", ["b1"]),
        ("bob", "2026-03-01", ["b1"]),
    ]


def test_an_invoices_subscriptions_come_in_the_order_they_started_whatever_order_they_were_read_in() -> None:
    subs = [subscribed("z-late", "alice", datetime(2026, 1, 20, tzinfo=UTC)),
            subscribed("a-early", "alice", datetime(2026, 1, 3, tzinfo=UTC)),
            subscribed("m-middle", "alice", datetime(2026, 1, 10, tzinfo=UTC))]
    for read in (subs, subs[::-1]):
        (february, _) = plan_groups(due_moments(read, datetime(2026, 3, 1, tzinfo=UTC), backdated=True), set())
        assert [s.terms.subscription_id for s, _ in february.items] == ["a-early", "m-middle", "z-late"]


def test_billed_moments_are_left_out() -> None:
    subs = [subscribed("a1", "alice", datetime(2026, 1, 3, tzinfo=UTC))]
    moments = due_moments(subs, datetime(2026, 3, 1, tzinfo=UTC), backdated=True)
    groups = plan_groups(moments, {("a1", moments[0][1].billing_key)})
    assert [g.at.date().isoformat() for g in groups] == ["2026-03-01"]
    assert plan_groups(moments, {("a1", due.billing_key) for _, due in moments}) == []


def test_batches_never_split_a_customer() -> None:
    subs = [subscribed(f"s{n}", f"c{n // 3}", datetime(2026, 1, 3, tzinfo=UTC)) for n in range(9)]
    groups = plan_groups(due_moments(subs, datetime(2026, 5, 1, tzinfo=UTC), backdated=True), set())
    cut = batches(groups, 5)
    assert [len(b) for b in cut] == [8, 4]  # c0's 4 groups then c1's 4 (still < 5 → same batch), then c2
    for batch in cut:
        customers = [g.customer_id for g in batch]
        assert all(c not in {g.customer_id for other in cut if other is not batch for g in other} for c in customers)


def test_an_invoice_is_due_its_payment_term_after_it_is_issued() -> None:
    assert payment_due_date(date(2026, 5, 1), 0) == date(2026, 5, 1)
    assert payment_due_date(date(2026, 5, 1), 30) == date(2026, 5, 31)
    assert payment_due_date(date(2026, 12, 20), 15) == date(2027, 1, 4)
    subs = [subscribed("a1", "alice", datetime(2026, 1, 3, tzinfo=UTC))]
    subs = [Subscribed(s.terms, s.organization_id, s.organization_name, s.external_id, s.plan_id, s.plan,
                       s.currency, s.grace_days, 30) for s in subs]
    (group, *_) = plan_groups(due_moments(subs, datetime(2026, 3, 1, tzinfo=UTC), backdated=True), set())
    assert (group.issuing_date, group.payment_term_days) == (date(2026, 2, 1), 30)


def test_only_a_final_invoice_not_paid_can_be_voided() -> None:
    assert voidable("finalized", "pending") and voidable("finalized", "failed")
    assert not voidable("finalized", "succeeded")  # paid: refunded with a credit note, never voided
    assert not voidable("draft", "pending") and not voidable("voided", "pending")
