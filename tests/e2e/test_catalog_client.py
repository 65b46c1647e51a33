"""Conformance: the catalog endpoints driven by Lago's official Python client (lago-python-client).

The client parses every answer into its typed models, so these tests also show that meterline's
objects carry the fields the client expects. Each test runs in a fresh organization.
"""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import (
    BillableMetric,
    Charge,
    Charges,
    Customer,
    CustomerBillingConfiguration,
    Plan,
    Subscription,
)

from tests.conftest import Stack

GRADUATED = {"graduated_ranges": [
    {"from_value": 0, "to_value": 10, "per_unit_amount": "0", "flat_amount": "0"},
    {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "1"},
]}


@pytest.fixture
def lago(stack: Stack, org_key: str) -> Client:
    # the client appends "api/v1/" to the URL itself
    return Client(api_key=org_key, api_url=f"{stack.api_url}/")


def not_found(call: object, code: str) -> None:
    with pytest.raises(LagoApiError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.status_code == 404
    assert caught.value.response == {"status": 404, "error": "Not Found", "code": code}


def metric(lago: Client, code: str, **fields: object) -> object:
    return lago.billable_metrics.create(BillableMetric(
        name=f"Metric {code}", code=code, aggregation_type=fields.pop("aggregation_type", "sum_agg"),
        field_name=fields.pop("field_name", "value"), **fields))


def test_billable_metrics(lago: Client) -> None:
    created = [metric(lago, f"m{n}", recurring=False if n == 2 else None) for n in range(3)]
    assert [m.code for m in created] == ["m0", "m1", "m2"]
    assert created[2].recurring is False and created[0].recurring is False
    with pytest.raises(LagoApiError) as caught:  # recurring usage is not metered: refused, not ignored
        metric(lago, "m3", recurring=True)
    assert caught.value.status_code == 422
    assert caught.value.response["error_details"] == {"recurring": ["not_supported"]}
    assert created[0].aggregation_type == "sum_agg" and created[0].field_name == "value"
    assert created[0].filters.__root__ == []

    found = lago.billable_metrics.find("m1")
    assert found.lago_id == created[1].lago_id and found.name == "Metric m1"

    first = lago.billable_metrics.find_all({"per_page": 2, "page": 1})
    second = lago.billable_metrics.find_all({"per_page": 2, "page": 2})
    assert first["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 2,
                             "total_count": 3}
    assert second["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1, "total_pages": 2,
                              "total_count": 3}
    listed = [m.code for m in first["billable_metrics"] + second["billable_metrics"]]
    assert sorted(listed) == ["m0", "m1", "m2"]

    updated = lago.billable_metrics.update(
        BillableMetric(name="Renamed", aggregation_type="max_agg", field_name="peak"), "m1")
    assert (updated.name, updated.aggregation_type, updated.field_name) == ("Renamed", "max_agg", "peak")
    assert lago.billable_metrics.find("m1").name == "Renamed"

    destroyed = lago.billable_metrics.destroy("m0")
    assert destroyed.code == "m0"
    not_found(lambda: lago.billable_metrics.find("m0"), "billable_metric_not_found")
    assert lago.billable_metrics.find_all()["meta"]["total_count"] == 2
    # the code of a deleted metric can be used again
    assert metric(lago, "m0").lago_id != created[0].lago_id


def test_plans_with_charges_by_metric_id(lago: Client) -> None:
    users = metric(lago, "users", aggregation_type="unique_count_agg", field_name="user_id")
    calls = metric(lago, "calls", aggregation_type="count_agg", field_name=None)
    plan = lago.plans.create(Plan(
        name="Team", code="team", interval="monthly", amount_cents=12000, amount_currency="USD",
        pay_in_advance=True, trial_period=14.0,
        charges=Charges(__root__=[
            Charge(billable_metric_id=users.lago_id, charge_model="graduated", properties=GRADUATED),
        ]),
    ))
    assert (plan.code, plan.interval, plan.amount_cents, plan.amount_currency) == ("team", "monthly", 12000, "USD")
    assert plan.pay_in_advance is True and plan.trial_period == 14.0
    [charge] = plan.charges.__root__
    assert charge.lago_billable_metric_id == users.lago_id and charge.billable_metric_code == "users"
    assert charge.charge_model == "graduated" and charge.properties == GRADUATED

    for n in range(2):
        lago.plans.create(Plan(name=f"P{n}", code=f"p{n}", interval="yearly", amount_cents=0,
                               amount_currency="EUR"))
    page = lago.plans.find_all({"per_page": 2, "page": 2})
    assert page["meta"]["total_count"] == 3 and page["meta"]["total_pages"] == 2
    assert len(page["plans"]) == 1

    # update: the existing charge (by id) changes its price, a new one is added
    updated = lago.plans.update(Plan(
        name="Team 2", amount_cents=15000,
        charges=Charges(__root__=[
            Charge(id=charge.lago_id, charge_model="standard", properties={"amount": "0.02"}),
            Charge(billable_metric_id=calls.lago_id, charge_model="package",
                   properties={"amount": "5", "package_size": 1000, "free_units": 100}),
        ]),
    ), "team")
    assert (updated.name, updated.amount_cents, updated.interval) == ("Team 2", 15000, "monthly")
    kept, added = updated.charges.__root__
    assert kept.lago_id == charge.lago_id and kept.charge_model == "standard"
    assert kept.properties == {"amount": "0.02"} and kept.billable_metric_code == "users"
    assert added.billable_metric_code == "calls" and added.charge_model == "package"
    assert [c.lago_id for c in lago.plans.find("team").charges.__root__] == [kept.lago_id, added.lago_id]

    # update without charges keeps them; with an empty list removes them
    assert len(lago.plans.update(Plan(description="d"), "team").charges.__root__) == 2
    assert lago.plans.update(Plan(charges=Charges(__root__=[])), "team").charges.__root__ == []

    assert lago.plans.destroy("p0").code == "p0"
    not_found(lambda: lago.plans.find("p0"), "plan_not_found")
    assert lago.plans.find_all()["meta"]["total_count"] == 2


def test_customers(lago: Client) -> None:
    created = lago.customers.create(Customer(
        external_id="acme", name="Acme", email="billing@acme.test", currency="USD", timezone="Europe/Paris",
        country="FR", billing_configuration=CustomerBillingConfiguration(invoice_grace_period=3),
    ))
    assert (created.external_id, created.name, created.currency) == ("acme", "Acme", "USD")
    assert created.timezone == "Europe/Paris" and created.applicable_timezone == "Europe/Paris"
    assert created.billing_configuration.invoice_grace_period == 3 and created.country == "FR"

    # POST again is an upsert: only the keys given change
    again = lago.customers.create(Customer(external_id="acme", name="Acme SAS"))
    assert again.lago_id == created.lago_id
    assert (again.name, again.email, again.timezone, again.country) == ("Acme SAS", "billing@acme.test",
                                                                         "Europe/Paris", "FR")
    assert lago.customers.find("acme").name == "Acme SAS"

    for n in range(3):
        lago.customers.create(Customer(external_id=f"c{n}"))
    first = lago.customers.find_all({"per_page": 3})
    assert first["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 2,
                             "total_count": 4}
    assert len(first["customers"]) == 3

    assert lago.customers.destroy("c0").external_id == "c0"
    not_found(lambda: lago.customers.find("c0"), "customer_not_found")
    assert lago.customers.find_all()["meta"]["total_count"] == 3


def test_subscriptions(lago: Client) -> None:
    metric(lago, "calls", aggregation_type="count_agg", field_name=None)
    lago.plans.create(Plan(name="Basic", code="basic", interval="monthly", amount_cents=1000,
                           amount_currency="USD"))
    lago.customers.create(Customer(external_id="acme", timezone="America/New_York"))

    # an unknown customer is created on the fly, as Lago does
    created = lago.subscriptions.create(Subscription(
        external_customer_id="newcomer", plan_code="basic", external_id="sub-1", name="Main",
        billing_time="anniversary"))
    assert (created.status, created.billing_time, created.plan_code, created.name) == (
        "active", "anniversary", "basic", "Main")
    assert created.current_billing_period_started_at is not None
    assert lago.customers.find("newcomer").lago_id == created.lago_customer_id

    lago.subscriptions.create(Subscription(external_customer_id="acme", plan_code="basic", external_id="sub-2"))
    lago.subscriptions.create(Subscription(external_customer_id="acme", plan_code="basic", external_id="sub-3"))
    pending = lago.subscriptions.create(Subscription(
        external_customer_id="acme", plan_code="basic", external_id="sub-4",
        subscription_at="2099-01-01T00:00:00Z"))
    assert pending.status == "pending" and pending.started_at is None

    # lists show active subscriptions unless asked for other statuses
    acme = lago.subscriptions.find_all({"external_customer_id": "acme", "per_page": 1})
    assert acme["meta"]["total_count"] == 2 and len(acme["subscriptions"]) == 1
    with_pending = lago.subscriptions.find_all({"external_customer_id": "acme", "status[]": ["active", "pending"]})
    assert sorted(s.external_id for s in with_pending["subscriptions"]) == ["sub-2", "sub-3", "sub-4"]
    assert lago.subscriptions.find("sub-4", {"status": "pending"}).status == "pending"

    renamed = lago.subscriptions.update(Subscription(name="Renamed"), "sub-2")
    assert renamed.name == "Renamed" and renamed.status == "active"

    terminated = lago.subscriptions.destroy("sub-2")
    assert terminated.status == "terminated" and terminated.terminated_at is not None
    not_found(lambda: lago.subscriptions.find("sub-2"), "subscription_not_found")
    assert lago.subscriptions.find("sub-2", {"status": "terminated"}).terminated_at == terminated.terminated_at
    assert lago.subscriptions.find_all({"external_customer_id": "acme"})["meta"]["total_count"] == 1
