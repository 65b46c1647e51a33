"""Which subscription the alerts worker evaluates for a touched pair (aggregator/alerts_app.py touched_views)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from aggregator.alerts_app import (
    BURST_S,
    BURST_YIELDING_S,
    DUTY,
    DUTY_YIELDING,
    Budget,
    distinct_pairs,
    touched_views,
)
from aggregator.model import SubscriptionView
from aggregator.touched import TouchedPair, touched_messages
from core.domain.periods import BillingCycle
from core.domain.thresholds import Alert, Threshold

ORG = "org"
ALERT = Alert("alert-1", "billable_metric_current_usage_units", "m1", (Threshold(Decimal(10)),))
FREE = SubscriptionView(id="sub-free", organization_id=ORG, external_id="s1", status="terminated",
                        cycle=BillingCycle("monthly", "calendar", date(2026, 1, 1), "UTC"), alerts=(ALERT,))
TEAM = replace(FREE, id="sub-team", status="active", predecessor=FREE)  # after a plan change


class Catalog:
    """The cached views, and the fresh ones `refresh` reads."""

    def __init__(self, cached: dict[tuple[str, str], SubscriptionView | None],
                 fresh: dict[tuple[str, str], SubscriptionView | None]):
        self.cached, self.fresh = cached, fresh
        self.refreshed: list[set[tuple[str, str]]] = []

    async def lookup(self, scopes):  # noqa: ANN001, ANN201
        return {scope: self.cached.get(scope) for scope in scopes}

    async def refresh(self, scopes):  # noqa: ANN001, ANN201
        self.refreshed.append(set(scopes))
        return {scope: self.fresh.get(scope) for scope in scopes}


def views(catalog: Catalog, *pairs: TouchedPair) -> dict[tuple[str, str], str]:
    found = asyncio.run(touched_views(catalog, set(pairs)))  # type: ignore[arg-type]
    return {key: view.id for key, view in found.items()}


def test_a_pair_of_the_subscription_before_a_plan_change_is_evaluated_with_that_one() -> None:
    catalog = Catalog({(ORG, "s1"): TEAM}, {})
    assert views(catalog, TouchedPair(ORG, "s1", "sub-free", "p1"), TouchedPair(ORG, "s1", "sub-team", "p2")) == {
        ("sub-free", "p1"): "sub-free", ("sub-team", "p2"): "sub-team"}
    assert catalog.refreshed == []


def test_a_cached_view_behind_the_aggregator_s_is_read_again() -> None:
    # the plan change (or the alert) came after the view was cached: the cache does not know the pair's subscription
    catalog = Catalog({(ORG, "s1"): FREE, (ORG, "s2"): replace(FREE, id="sub-2", external_id="s2", alerts=())},
                      {(ORG, "s1"): TEAM, (ORG, "s2"): replace(FREE, id="sub-2", external_id="s2")})
    assert views(catalog, TouchedPair(ORG, "s1", "sub-team", "p2"), TouchedPair(ORG, "s2", "sub-2", "p2")) == {
        ("sub-team", "p2"): "sub-team", ("sub-2", "p2"): "sub-2"}
    assert catalog.refreshed == [{(ORG, "s1"), (ORG, "s2")}]


def test_a_pair_whose_subscription_is_gone_or_no_longer_watched_has_nothing_to_evaluate() -> None:
    unwatched = replace(FREE, id="sub-3", external_id="s3", alerts=())
    catalog = Catalog({(ORG, "s3"): unwatched}, {(ORG, "s3"): unwatched})
    assert views(catalog, TouchedPair(ORG, "s3", "sub-3", "p1"), TouchedPair(ORG, "gone", "sub-x", "p1")) == {}
    assert catalog.refreshed == [{(ORG, "s3"), (ORG, "gone")}]


def test_the_pairs_of_several_messages_are_evaluated_once_each_and_a_message_not_of_the_aggregator_is_skipped(
        caplog: pytest.LogCaptureFixture) -> None:
    first = TouchedPair(ORG, "s1", "sub-1", "p1")
    second = TouchedPair(ORG, "s2", "sub-2", "p1")
    values = [value for _, value in touched_messages([first, second], 1)] * 2 + [b"not json"]
    assert distinct_pairs(values) == [first, second]
    assert "skipping a message: not a usage.touched message" in caplog.text


def test_the_evaluation_budget_lets_a_live_stream_through_and_holds_a_backlog_to_its_share_of_time() -> None:
    clock = [100.0]
    budget = Budget(lambda: clock[0])
    for _ in range(50):  # a live stream: a few milliseconds of evaluation every 50 ms, never a wait
        assert budget.wait_s() == 0.0
        budget.spend(0.005)
        clock[0] += 0.05
    assert budget.wait_s() == 0.0
    budget.spend(BURST_S + 1.0)  # a backlog's chunk, past what was saved up: a second of debt
    assert budget.wait_s() == pytest.approx(1.0 / DUTY)
    clock[0] += 1.0 / DUTY  # rested: evaluation took DUTY of the time
    assert budget.wait_s() == pytest.approx(0.0)


def test_while_the_aggregators_are_behind_the_budget_saves_up_and_refills_less() -> None:
    clock = [100.0]
    budget = Budget(lambda: clock[0])
    assert budget.wait_s() == 0.0  # BURST_S saved up
    assert budget.wait_s(yielding=True) == 0.0
    budget.spend(BURST_YIELDING_S + 0.1)  # what was saved beyond BURST_YIELDING_S is gone once yielding
    assert budget.wait_s(yielding=True) == pytest.approx(0.1 / DUTY_YIELDING)
    clock[0] += 0.1 / DUTY_YIELDING
    assert budget.wait_s(yielding=True) == pytest.approx(0.0)
    budget.spend(0.1)
    assert budget.wait_s(yielding=False) == pytest.approx(0.1 / DUTY)  # caught up: the worker's own share
    clock[0] += 100.0
    assert budget.wait_s(yielding=True) == 0.0
    budget.spend(BURST_YIELDING_S)
    assert budget.wait_s(yielding=True) == pytest.approx(0.0)  # a long rest saved up BURST_YIELDING_S only
    budget.spend(0.01)
    assert budget.wait_s(yielding=True) == pytest.approx(0.01 / DUTY_YIELDING)
