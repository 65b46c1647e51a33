"""Progressive billing thresholds over HTTP: a plan's `usage_thresholds`, a subscription's own
(`plan_overrides.usage_thresholds`) and `progressive_billing_disabled`, what applies to a subscription, plan
changes, and lifetime usage. What they bill is tested in test_progressive_billing.py."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.models import Plan, Subscription
from lago_python_client.models.plan import PlanOverrides
from lago_python_client.models.usage_threshold import (
    UsageThreshold,
    UsageThresholdOverrides,
    UsageThresholds,
    UsageThresholdsOverrides,
)

from tests.conftest import Stack
from tests.e2e.invoice_support import create, customer, mtu_events, mtu_metric, per_unit, plan, send


def seed(client: httpx.Client, thresholds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """MTUs at 50 cents each; plan `usage` (1,000 a month, in arrears) with these `thresholds`; customer c1.
    The plan as answered."""
    mtu_metric(client)
    plan(client, "usage", amount=1000, advance=False, charges=[per_unit("mtu", "0.5")])
    customer(client, "c1")
    return with_thresholds(client, "usage", thresholds or [])


def with_thresholds(client: httpx.Client, plan_code: str, thresholds: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.put(f"/plans/{plan_code}", json={"plan": {"usage_thresholds": thresholds}})
    assert response.status_code == 200, response.text
    return response.json()["plan"]


def subscribe(client: httpx.Client, external_id: str = "s1", plan_code: str = "usage", **fields: Any
              ) -> dict[str, Any]:
    return create(client, "/subscriptions", "subscription", {
        "external_customer_id": "c1", "plan_code": plan_code, "external_id": external_id, **fields})


def invalid(response: httpx.Response, details: dict[str, Any]) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error_details"] == details


def shown(thresholds: list[dict[str, Any]]) -> list[tuple[int, str | None, bool]]:
    return [(t["amount_cents"], t["threshold_display_name"], t["recurring"]) for t in thresholds]


def test_a_plans_thresholds_round_trip(client: httpx.Client) -> None:
    mtu_metric(client)
    response = client.post("/plans", json={"plan": {
        "name": "Usage", "code": "usage", "interval": "monthly", "amount_cents": 1000, "amount_currency": "USD",
        "charges": [per_unit("mtu", "0.5")],
        "usage_thresholds": [{"amount_cents": 20_000, "threshold_display_name": "$200"},
                             {"amount_cents": 5_000, "recurring": True}, {"amount_cents": "10000"}]}})
    assert response.status_code == 200, response.text
    created = response.json()["plan"]
    assert shown(created["usage_thresholds"]) == [(5_000, None, True), (10_000, None, False),
                                                  (20_000, "$200", False)]
    first = created["usage_thresholds"][0]
    assert set(first) == {"lago_id", "threshold_display_name", "amount_cents", "recurring", "created_at",
                          "updated_at"}
    assert first["created_at"] == first["updated_at"] == created["created_at"]
    assert client.get("/plans/usage").json()["plan"] == created
    assert client.get("/plans").json()["plans"] == [created]


PLAN_ERRORS: list[tuple[Any, dict[str, list[str]]]] = [
    ([{"threshold_display_name": "no amount"}], {"usage_thresholds": ["missing_amount_cents"]}),
    ([{"amount_cents": 0}], {"usage_thresholds.0.amount_cents": ["value_is_invalid"]}),
    ([{"amount_cents": -5}], {"usage_thresholds.0.amount_cents": ["value_is_invalid"]}),
    ([{"amount_cents": 10**15 + 1}], {"usage_thresholds.0.amount_cents": ["value_is_invalid"]}),
    ([{"amount_cents": "lots"}], {"usage_thresholds.0.amount_cents": ["invalid_format"]}),
    ([{"amount_cents": 1.5}], {"usage_thresholds.0.amount_cents": ["invalid_format"]}),
    ([{"amount_cents": True}], {"usage_thresholds.0.amount_cents": ["invalid_format"]}),
    ([{"amount_cents": 100, "recurring": "yes"}], {"usage_thresholds.0.recurring": ["invalid_format"]}),
    ([{"amount_cents": 100, "threshold_display_name": 3}], {"usage_thresholds.0.threshold_display_name":
                                                           ["invalid_format"]}),
    ([{"amount_cents": 100, "threshold_display_name": "n" * 256}],
     {"usage_thresholds.0.threshold_display_name": ["value_is_too_long"]}),
    ([{"amount_cents": 100}, {"amount_cents": 100}], {"usage_thresholds": ["duplicated_values"]}),
    ([{"amount_cents": 100, "recurring": True}, {"amount_cents": 200, "recurring": True}],
     {"usage_thresholds": ["multiple_recurring_thresholds"]}),
    ([{"amount_cents": 100}, "200"], {"usage_thresholds.1": ["invalid_format"]}),
    ({"amount_cents": 100}, {"usage_thresholds": ["invalid_format"]}),
    ([{"amount_cents": n} for n in range(1, 102)], {"usage_thresholds": ["too_many_thresholds"]}),
]


@pytest.mark.parametrize(("thresholds", "details"), PLAN_ERRORS, ids=[str(i) for i in range(len(PLAN_ERRORS))])
def test_a_plans_thresholds_are_validated(client: httpx.Client, thresholds: Any,
                                          details: dict[str, list[str]]) -> None:
    mtu_metric(client)
    body = {"name": "Usage", "code": "usage", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
            "usage_thresholds": thresholds}
    invalid(client.post("/plans", json={"plan": body}), details)
    assert client.get("/plans/usage").status_code == 404
    plan(client, "usage", amount=0, advance=False)
    invalid(client.put("/plans/usage", json={"plan": {"usage_thresholds": thresholds}}), details)
    assert client.get("/plans/usage").json()["plan"]["usage_thresholds"] == []
    # as a subscription's own, keyed under plan_overrides
    customer(client, "c1")
    nested = {f"plan_overrides.{key}": codes for key, codes in details.items()}
    invalid(client.post("/subscriptions", json={"subscription": {
        "external_customer_id": "c1", "plan_code": "usage", "external_id": "s1",
        "plan_overrides": {"usage_thresholds": thresholds}}}), nested)


def test_a_plan_update_replaces_its_thresholds(client: httpx.Client) -> None:
    before = seed(client, [{"amount_cents": 100}, {"amount_cents": 200, "threshold_display_name": "two"}])
    assert shown(before["usage_thresholds"]) == [(100, None, False), (200, "two", False)]
    kept = {t["amount_cents"]: t["lago_id"] for t in before["usage_thresholds"]}
    after = client.put("/plans/usage", json={"plan": {"usage_thresholds": [
        {"amount_cents": 200, "threshold_display_name": "two"}, {"amount_cents": 300, "recurring": True}]}}).json()
    assert shown(after["plan"]["usage_thresholds"]) == [(200, "two", False), (300, None, True)]
    assert after["plan"]["usage_thresholds"][0]["lago_id"] == kept[200]  # unchanged: the same threshold
    # a threshold with a new name is a new one; null leaves them as they are; an empty list removes them
    renamed = client.put("/plans/usage", json={"plan": {"usage_thresholds": [
        {"amount_cents": 200, "threshold_display_name": "deux"}]}}).json()["plan"]["usage_thresholds"]
    assert shown(renamed) == [(200, "deux", False)] and renamed[0]["lago_id"] != kept[200]
    assert client.put("/plans/usage", json={"plan": {"usage_thresholds": None, "description": "d"}}).json()[
        "plan"]["usage_thresholds"] == renamed
    assert client.put("/plans/usage", json={"plan": {"usage_thresholds": []}}).json()["plan"][
        "usage_thresholds"] == []


def test_a_subscription_shows_the_thresholds_that_apply(client: httpx.Client) -> None:
    seed(client, [{"amount_cents": 5_000}])
    plain = subscribe(client, "plain")
    assert (plain["progressive_billing_disabled"], plain["applicable_usage_thresholds"]) == (
        False, [{"threshold_display_name": None, "amount_cents": 5_000, "recurring": False}])
    assert shown(plain["plan"]["usage_thresholds"]) == [(5_000, None, False)]
    own = subscribe(client, "own", plan_overrides={"usage_thresholds": [
        {"amount_cents": 700, "threshold_display_name": "seven"}, {"amount_cents": 300, "recurring": True}]})
    assert own["applicable_usage_thresholds"] == [
        {"threshold_display_name": None, "amount_cents": 300, "recurring": True},
        {"threshold_display_name": "seven", "amount_cents": 700, "recurring": False}]
    assert shown(own["plan"]["usage_thresholds"]) == [(5_000, None, False)]  # the plan keeps its own
    disabled = subscribe(client, "off", progressive_billing_disabled=True)
    assert (disabled["progressive_billing_disabled"], disabled["applicable_usage_thresholds"]) == (True, [])
    top_level = subscribe(client, "top", usage_thresholds=[{"amount_cents": 900}])  # Lago's newer place for them
    assert shown(top_level["applicable_usage_thresholds"]) == [(900, None, False)]
    # the same in every answer: find, list, terminate
    assert client.get("/subscriptions/own").json()["subscription"] == own
    listed = {s["external_id"]: s for s in client.get("/subscriptions").json()["subscriptions"]}
    assert {k: (s["progressive_billing_disabled"], shown(s["applicable_usage_thresholds"]))
            for k, s in listed.items()} == {"plain": (False, [(5_000, None, False)]), "off": (True, []),
                                           "own": (False, [(300, None, True), (700, "seven", False)]),
                                           "top": (False, [(900, None, False)])}
    ended = client.delete("/subscriptions/own").json()["subscription"]
    assert shown(ended["applicable_usage_thresholds"]) == [(300, None, True), (700, "seven", False)]


def test_a_subscription_update_changes_its_progressive_billing(client: httpx.Client) -> None:
    seed(client, [{"amount_cents": 5_000}])
    subscribe(client)

    def put(**fields: Any) -> dict[str, Any]:
        response = client.put("/subscriptions/s1", json={"subscription": fields})
        assert response.status_code == 200, response.text
        return response.json()["subscription"]

    updated = put(progressive_billing_disabled=True)
    assert (updated["progressive_billing_disabled"], updated["applicable_usage_thresholds"]) == (True, [])
    assert updated["plan"]["code"] == "usage"  # Lago answers a PUT with the plan
    updated = put(progressive_billing_disabled=False, plan_overrides={"usage_thresholds": [{"amount_cents": 42}]})
    assert shown(updated["applicable_usage_thresholds"]) == [(42, None, False)]
    assert shown(put(name="renamed")["applicable_usage_thresholds"]) == [(42, None, False)]  # kept
    assert shown(put(plan_overrides={"usage_thresholds": []})["applicable_usage_thresholds"]) == [
        (5_000, None, False)]  # no own thresholds: the plan's apply again
    invalid(client.put("/subscriptions/s1", json={"subscription": {"progressive_billing_disabled": "yes"}}),
            {"progressive_billing_disabled": ["invalid_format"]})
    invalid(client.put("/subscriptions/s1", json={"subscription": {
        "usage_thresholds": [{"amount_cents": 1}], "plan_overrides": {"usage_thresholds": [{"amount_cents": 2}]}}}),
        {"usage_thresholds": ["value_is_invalid"]})


@pytest.mark.parametrize(("overrides", "field"), [
    ({"amount_cents": 1}, "plan_overrides.amount_cents"), ({"name": "mine"}, "plan_overrides.name"),
    ({"trial_period": 3}, "plan_overrides.trial_period"), ({"tax_codes": ["vat"]}, "plan_overrides.tax_codes"),
    ({"charges": [{"id": "x"}]}, "plan_overrides.charges"),
    ({"minimum_commitment": {"amount_cents": 1}}, "plan_overrides.minimum_commitment"),
    ({"fixed_charges": [{"id": "x"}]}, "plan_overrides.fixed_charges"),
])
def test_other_plan_overrides_are_refused(client: httpx.Client, overrides: dict[str, Any], field: str) -> None:
    seed(client)
    body = {"external_customer_id": "c1", "plan_code": "usage", "external_id": "s1",
            "plan_overrides": {**overrides, "usage_thresholds": [{"amount_cents": 5}]}}
    invalid(client.post("/subscriptions", json={"subscription": body}), {field: ["not_supported"]})
    assert client.get("/subscriptions/s1").status_code == 404
    # what the official client sends for the overrides left unset is accepted
    unset = {"name": None, "amount_cents": None, "charges": None, "tax_codes": None, "usage_thresholds": None}
    assert subscribe(client, plan_overrides=unset)["applicable_usage_thresholds"] == []
    invalid(client.put("/subscriptions/s1", json={"subscription": {"plan_overrides": overrides}}),
            {field: ["not_supported"]})
    invalid(client.put("/subscriptions/s1", json={"subscription": {"plan_overrides": "all"}}),
            {"plan_overrides": ["invalid_format"]})


def test_a_plan_change_gives_the_new_subscription_its_plans_thresholds(client: httpx.Client) -> None:
    seed(client, [{"amount_cents": 5_000}])
    plan(client, "bigger", amount=5000, advance=False, charges=[per_unit("mtu", "0.5")])
    with_thresholds(client, "bigger", [{"amount_cents": 9_000}])
    subscribe(client, progressive_billing_disabled=True, plan_overrides={"usage_thresholds": [{"amount_cents": 7}]})
    upgraded = subscribe(client, plan_code="bigger")  # an upgrade: a new subscription
    assert upgraded["previous_plan_code"] == "usage"
    # the new plan's thresholds (the old subscription's own were for the old plan); still disabled
    assert upgraded["progressive_billing_disabled"] is True
    enabled = client.put("/subscriptions/s1", json={"subscription": {"progressive_billing_disabled": False}})
    assert shown(enabled.json()["subscription"]["applicable_usage_thresholds"]) == [(9_000, None, False)]
    plan(client, "biggest", amount=9000, advance=False, charges=[per_unit("mtu", "0.5")])
    time.sleep(1.1)  # the upgrade has taken effect (a second after it was asked)
    again = client.put("/subscriptions/s1", json={"subscription": {
        "plan_code": "biggest", "plan_overrides": {"usage_thresholds": [{"amount_cents": 11}]}}}).json()
    assert again["subscription"]["plan_code"] == "biggest"
    assert (again["subscription"]["progressive_billing_disabled"],
            shown(again["subscription"]["applicable_usage_thresholds"])) == (False, [(11, None, False)])


def test_lifetime_usage_without_usage(client: httpx.Client) -> None:
    seed(client, [{"amount_cents": 2_000}, {"amount_cents": 500, "recurring": True}])
    subscription = subscribe(client)
    response = client.get("/subscriptions/s1/lifetime_usage")
    assert response.status_code == 200, response.text
    usage = response.json()["lifetime_usage"]
    assert usage["to_datetime"] >= usage["from_datetime"] == subscription["started_at"]
    assert {k: v for k, v in usage.items() if k not in ("lago_id", "to_datetime", "from_datetime")} == {
        "lago_subscription_id": subscription["lago_id"], "external_subscription_id": "s1",
        "external_historical_usage_amount_cents": 0, "invoiced_usage_amount_cents": 0,
        "current_usage_amount_cents": 0,
        "usage_thresholds": [{"amount_cents": 2_000, "completion_ratio": 0.0, "reached_at": None},
                             {"amount_cents": 2_500, "completion_ratio": 0.0, "reached_at": None}]}
    assert client.get("/subscriptions/s1/lifetime_usage").json()["lifetime_usage"]["lago_id"] == usage["lago_id"]
    missing = client.get("/subscriptions/nope/lifetime_usage")
    assert (missing.status_code, missing.json()["code"]) == (404, "lifetime_usage_not_found")
    # Lago's PUT sets a historical amount meterline does not keep
    invalid(client.put("/subscriptions/s1/lifetime_usage",
                       json={"lifetime_usage": {"external_historical_usage_amount_cents": 100}}),
            {"external_historical_usage_amount_cents": ["not_supported"]})
    unchanged = client.put("/subscriptions/s1/lifetime_usage", json={"lifetime_usage": {}})
    assert unchanged.status_code == 200 and unchanged.json()["lifetime_usage"]["current_usage_amount_cents"] == 0


def test_lifetime_usage_counts_the_current_periods_usage(client: httpx.Client) -> None:
    seed(client, [{"amount_cents": 4_000}])
    subscribe(client)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    send(client, mtu_events("s1", "u", range(30), now))  # 30 MTUs at 50 cents: 1,500 cents
    deadline = time.monotonic() + 60
    while (usage := client.get("/subscriptions/s1/lifetime_usage").json()["lifetime_usage"])[
            "current_usage_amount_cents"] < 1_500:
        assert time.monotonic() < deadline, usage
        time.sleep(0.2)
    current = client.get("/customers/c1/current_usage", params={"external_subscription_id": "s1"}).json()
    assert usage["current_usage_amount_cents"] == current["customer_usage"]["amount_cents"] == 1_500
    assert usage["usage_thresholds"] == [{"amount_cents": 4_000, "completion_ratio": 0.375, "reached_at": None}]
    assert usage["invoiced_usage_amount_cents"] == 0


def test_lagos_python_client_sends_and_reads_thresholds(client: httpx.Client, stack: Stack, org_key: str) -> None:
    lago = Client(api_key=org_key, api_url=f"{stack.api_url}/")  # it appends "api/v1/" itself
    mtu_metric(client)
    created = lago.plans.create(Plan(
        name="Usage", code="usage", interval="monthly", amount_cents=1000, amount_currency="USD",
        pay_in_advance=False, usage_thresholds=UsageThresholds(__root__=[
            UsageThreshold(amount_cents=20_000, threshold_display_name="$200", recurring=False)])))
    assert [(t.amount_cents, t.threshold_display_name, t.recurring) for t in created.usage_thresholds.__root__] == [
        (20_000, "$200", False)]
    customer(client, "c1")
    subscription = lago.subscriptions.create(Subscription(
        external_customer_id="c1", plan_code="usage", external_id="s1",
        plan_overrides=PlanOverrides(usage_thresholds=UsageThresholdsOverrides(__root__=[
            UsageThresholdOverrides(amount_cents=700, threshold_display_name=None, recurring=True)]))))
    assert subscription.external_id == "s1"
    assert shown(client.get("/subscriptions/s1").json()["subscription"]["applicable_usage_thresholds"]) == [
        (700, None, True)]
    usage = lago.subscriptions.lifetime_usage("s1")
    assert [(t.amount_cents, t.completion_ratio, t.reached_at) for t in usage.usage_thresholds] == [
        (700, 0.0, None)]
