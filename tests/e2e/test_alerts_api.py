"""The alerts API over HTTP (/subscriptions/{external_id}/alerts): Lago's shapes and validation codes, all or
nothing batches, soft deletion, 404s, authentication and tenant isolation. What fires them is tested in
test_alerts_stream.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lago_python_client.client import Client
from lago_python_client.models.alert import Alert, AlertsList, AlertThreshold, AlertThresholdList

from meterline.orgs import ensure_organization
from tests.builders import api
from tests.conftest import Services, Stack
from tests.e2e.invoice_support import create, customer, mtu_metric, per_unit, plan

ALERT_KEYS = {"lago_id", "lago_organization_id", "external_subscription_id", "lago_wallet_id", "wallet_code",
              "billable_metric", "alert_type", "code", "name", "direction", "previous_value", "last_processed_at",
              "thresholds", "created_at", "triggered_alerts"}


def seed(client: httpx.Client, external_id: str = "s1") -> None:
    """Metrics mtu and gb (charged for by plan `usage`) and calls (not charged), customer c1 and its
    subscription."""
    mtu_metric(client)
    create(client, "/billable_metrics", "billable_metric", {
        "name": "Storage", "code": "gb", "aggregation_type": "sum_agg", "field_name": "gb"})
    plan(client, "usage", amount=1000, advance=False, charges=[per_unit("mtu", "0.5"), per_unit("gb", "2")])
    customer(client, "c1")
    create(client, "/subscriptions", "subscription", {
        "external_customer_id": "c1", "plan_code": "usage", "external_id": external_id})
    create(client, "/billable_metrics", "billable_metric", {"name": "Calls", "code": "calls",
                                                           "aggregation_type": "count_agg"})


@pytest.fixture
def seeded(client: httpx.Client) -> Iterator[httpx.Client]:
    seed(client)
    yield client


def alert(**fields: Any) -> dict[str, Any]:
    return {"alert_type": "current_usage_amount", "code": "spend", "thresholds": [{"value": 1000}], **fields}


def post(client: httpx.Client, body: dict[str, Any], external_id: str = "s1") -> httpx.Response:
    return client.post(f"/subscriptions/{external_id}/alerts", json=body)


def invalid(response: httpx.Response, details: dict[str, Any]) -> None:
    assert response.status_code == 422, response.text
    assert response.json() == {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                               "error_details": details}


def missing(response: httpx.Response, resource: str) -> None:
    assert (response.status_code, response.json()) == (
        404, {"status": 404, "error": "Not Found", "code": f"{resource}_not_found"}), response.text


def codes(client: httpx.Client, external_id: str = "s1") -> list[str]:
    response = client.get(f"/subscriptions/{external_id}/alerts")
    assert response.status_code == 200, response.text
    return [a["code"] for a in response.json()["alerts"]]


def test_an_alert_is_created_in_lagos_shape_and_read_back(seeded: httpx.Client) -> None:
    response = post(seeded, {"alert": alert(name="Spend", thresholds=[
        {"code": "critical", "value": "2000.50"}, {"code": "warn", "value": 1000}, {"value": 500, "recurring": True}])})
    assert response.status_code == 200, response.text
    created = response.json()["alert"]
    assert set(created) == ALERT_KEYS
    assert {k: created[k] for k in ALERT_KEYS - {"lago_id", "lago_organization_id", "created_at"}} == {
        "external_subscription_id": "s1", "lago_wallet_id": None, "wallet_code": None, "billable_metric": None,
        "alert_type": "current_usage_amount", "code": "spend", "name": "Spend", "direction": "increasing",
        "previous_value": 0, "last_processed_at": None, "triggered_alerts": [],
        # in ascending order of value, as Lago writes a BigDecimal
        "thresholds": [{"code": None, "value": "500.0", "recurring": True},
                       {"code": "warn", "value": "1000.0", "recurring": False},
                       {"code": "critical", "value": "2000.5", "recurring": False}]}
    assert created["created_at"].endswith("Z")
    assert seeded.get("/subscriptions/s1/alerts/spend").json() == {"alert": created}
    listing = seeded.get("/subscriptions/s1/alerts").json()
    assert listing == {"alerts": [created], "meta": {"current_page": 1, "next_page": None, "prev_page": None,
                                                     "total_pages": 1, "total_count": 1}}


def test_a_metric_alert_shows_its_billable_metric(seeded: httpx.Client) -> None:
    created = post(seeded, {"alert": alert(alert_type="billable_metric_current_usage_units", code="mtus",
                                           billable_metric_code="mtu", thresholds=[{"value": "0.25"}])}).json()["alert"]
    assert created["billable_metric"] == seeded.get("/billable_metrics/mtu").json()["billable_metric"]
    assert created["thresholds"] == [{"code": None, "value": "0.25", "recurring": False}]
    # one alert per type and metric: the same type on another metric is another alert
    other = post(seeded, {"alert": alert(alert_type="billable_metric_current_usage_units", code="gbs",
                                         billable_metric_code="gb")})
    assert other.status_code == 200, other.text
    again = post(seeded, {"alert": alert(alert_type="billable_metric_current_usage_units", code="mtus2",
                                         billable_metric_code="mtu")})
    invalid(again, {"base": ["alert_already_exists"]})


def test_a_batch_is_created_all_or_nothing(seeded: httpx.Client) -> None:
    good = [alert(code="a"), alert(alert_type="lifetime_usage_amount", code="b", thresholds=[{"value": 5}]),
            alert(alert_type="billable_metric_current_usage_amount", code="c", billable_metric_code="gb")]
    bad = post(seeded, {"alerts": [*good[:2], alert(code="d", thresholds=[{"value": "x"}]), alert(code="a")]})
    invalid(bad, {"2": {"thresholds:value": ["value_is_invalid"]}})
    taken = post(seeded, {"alerts": [*good, alert(alert_type="billable_metric_current_usage_units", code="a",
                                                    billable_metric_code="mtu")]})
    invalid(taken, {"3": {"code": ["value_already_exist"]}})
    unknown = post(seeded, {"alerts": [good[0], alert(alert_type="billable_metric_current_usage_units", code="e",
                                                      billable_metric_code="nope")]})
    invalid(unknown, {"1": {"billable_metric": ["billable_metric_not_found"]}})
    assert codes(seeded) == []  # none of them was created
    response = post(seeded, {"alerts": good})
    assert response.status_code == 200, response.text
    created = response.json()["alerts"]
    assert [(a["code"], a["alert_type"]) for a in created] == [
        ("a", "current_usage_amount"), ("b", "lifetime_usage_amount"), ("c", "billable_metric_current_usage_amount")]
    assert created[2]["billable_metric"]["code"] == "gb"
    assert sorted(codes(seeded)) == ["a", "b", "c"]
    # Lago takes `alerts` when it holds something: an empty one leaves `alert`, which is missing
    empty = post(seeded, {"alerts": []})
    assert (empty.status_code, empty.json()["error"]) == (400, "BadRequest: param is missing or the value is empty: "
                                                                "alert")
    invalid(post(seeded, {"alerts": "a"}), {"alerts": ["invalid_format"]})
    invalid(post(seeded, {"alerts": [alert(code=f"x{n}") for n in range(101)]}), {"alerts": ["too_many_alerts"]})


def _thresholds(*values: Any) -> dict[str, Any]:
    return alert(thresholds=[{"value": v} for v in values])


VALIDATION: list[tuple[dict[str, Any], dict[str, list[str]]]] = [
    ({"code": "x", "thresholds": [{"value": 1}]}, {"alert_type": ["value_is_mandatory", "value_is_invalid"]}),
    (alert(alert_type="yolo"), {"alert_type": ["invalid_type"]}),
    (alert(alert_type="wallet_balance_amount"), {"alert_type": ["invalid_type"]}),
    (alert(alert_type=7), {"alert_type": ["invalid_format"]}),
    (alert(code=None), {"code": ["value_is_mandatory"]}),
    (alert(code=12), {"code": ["invalid_format"]}),
    (alert(code="a\tb"), {"code": ["value_is_invalid"]}),
    (alert(code="c" * 256), {"code": ["value_is_too_long"]}),
    (alert(name=["n"]), {"name": ["invalid_format"]}),
    (alert(thresholds=None), {"thresholds": ["value_is_mandatory"]}),
    (alert(thresholds=[]), {"thresholds": ["value_is_mandatory"]}),
    (alert(thresholds="1000"), {"thresholds": ["invalid_format"]}),
    (alert(thresholds=[1000]), {"thresholds": ["invalid_format"]}),
    (_thresholds(*range(1, 22)), {"thresholds": ["too_many_thresholds"]}),
    (_thresholds(None), {"thresholds:value": ["value_is_mandatory"]}),
    (_thresholds("abc"), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds(True), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds({"v": 1}), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds("NaN"), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds("Infinity"), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds(-1), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds(0), {"thresholds:value": ["value_is_invalid"]}),  # usage starts at 0: it would never fire
    (alert(direction="decreasing"), {"direction": ["not_supported"]}),
    (_thresholds("0.000001"), {"thresholds:value": ["value_is_invalid"]}),  # Lago keeps 5 decimals
    (_thresholds(10**15 + 1), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds("1" * 65), {"thresholds:value": ["value_is_invalid"]}),
    (_thresholds(100, "100.0"), {"thresholds": ["duplicate_threshold_values"]}),
    (alert(thresholds=[{"value": 0, "recurring": True}]), {"thresholds:value": ["recurring_value_is_negative"]}),
    (alert(thresholds=[{"value": 5, "recurring": True}, {"value": 6, "recurring": True}]),
     {"thresholds:recurring": ["value_is_invalid"]}),
    (alert(thresholds=[{"value": 5, "recurring": "yes"}]), {"thresholds:recurring": ["invalid_format"]}),
    (alert(thresholds=[{"value": 5, "code": 3}]), {"thresholds:code": ["invalid_format"]}),
    (alert(alert_type="billable_metric_current_usage_units"), {"billable_metric": ["value_is_mandatory"]}),
    (alert(billable_metric_code="mtu"), {"billable_metric": ["value_must_be_blank"]}),
    (alert(alert_type="billable_metric_current_usage_units", billable_metric_code=5),
     {"billable_metric_code": ["invalid_format"]}),
]


@pytest.mark.parametrize(("body", "details"), VALIDATION, ids=[str(i) for i in range(len(VALIDATION))])
def test_each_validation_error_has_lagos_code(seeded: httpx.Client, body: dict[str, Any],
                                              details: dict[str, list[str]]) -> None:
    invalid(post(seeded, {"alert": body}), details)
    invalid(post(seeded, {"alerts": [alert(code="fine"), body]}), {"1": details})
    assert codes(seeded) == []


def test_what_is_valid_at_the_edges(seeded: httpx.Client) -> None:
    edges = alert(code="edges", name=None, thresholds=[
        {"value": "0.00001"}, {"value": "  7.12345 "}, {"value": 10**15},
        {"value": 2.5, "code": None, "recurring": None}, {"value": "1e3"}, {"value": 100, "recurring": True},
        {"value": 100}], direction="increasing")  # a value recurring and fixed
    response = post(seeded, {"alert": edges})
    assert response.status_code == 200, response.text
    assert response.json()["alert"]["thresholds"] == [
        {"code": None, "value": "0.00001", "recurring": False}, {"code": None, "value": "2.5", "recurring": False},
        {"code": None, "value": "7.12345", "recurring": False}, {"code": None, "value": "100.0", "recurring": False},
        {"code": None, "value": "100.0", "recurring": True}, {"code": None, "value": "1000.0", "recurring": False},
        {"code": None, "value": "1000000000000000.0", "recurring": False}]
    assert response.json()["alert"]["name"] is None


def test_codes_are_unique_among_live_alerts_and_one_alert_per_type(seeded: httpx.Client) -> None:
    assert post(seeded, {"alert": alert()}).status_code == 200
    invalid(post(seeded, {"alert": alert(alert_type="lifetime_usage_amount")}), {"code": ["value_already_exist"]})
    invalid(post(seeded, {"alert": alert(code="other")}), {"base": ["alert_already_exists"]})
    invalid(post(seeded, {"alert": alert()}), {"code": ["value_already_exist"], "base": ["alert_already_exists"]})
    # a deleted alert's code (and type) can be used again: a new alert
    first = seeded.get("/subscriptions/s1/alerts/spend").json()["alert"]
    assert seeded.delete("/subscriptions/s1/alerts/spend").json()["alert"]["lago_id"] == first["lago_id"]
    again = post(seeded, {"alert": alert(thresholds=[{"value": 7}])})
    assert again.status_code == 200, again.text
    assert again.json()["alert"]["lago_id"] != first["lago_id"]
    assert again.json()["alert"]["thresholds"] == [{"code": None, "value": "7.0", "recurring": False}]


def test_an_alert_is_updated(seeded: httpx.Client) -> None:
    post(seeded, {"alerts": [alert(alert_type="billable_metric_current_usage_units", code="units",
                                   billable_metric_code="mtu", name="MTUs"), alert()]})
    response = seeded.put("/subscriptions/s1/alerts/units", json={"alert": {
        "name": "Storage", "code": "storage", "billable_metric_code": "gb",
        "thresholds": [{"value": 30, "code": "hi"}, {"value": 10, "recurring": True}]}})
    assert response.status_code == 200, response.text
    updated = response.json()["alert"]
    assert (updated["name"], updated["code"], updated["billable_metric"]["code"], updated["thresholds"]) == (
        "Storage", "storage", "gb", [{"code": None, "value": "10.0", "recurring": True},
                                     {"code": "hi", "value": "30.0", "recurring": False}])
    missing(seeded.get("/subscriptions/s1/alerts/units"), "alert")
    assert seeded.get("/subscriptions/s1/alerts/storage").json()["alert"] == updated
    # null and an empty list are "not given": the name and the thresholds stay
    kept = seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {"name": None, "thresholds": []}})
    assert kept.json()["alert"] == updated
    invalid(seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {"code": "spend"}}),
            {"code": ["value_already_exist"]})
    invalid(seeded.put("/subscriptions/s1/alerts/spend", json={"alert": {"billable_metric_code": "gb"}}),
            {"billable_metric": ["value_must_be_blank"]})
    missing(seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {"billable_metric_code": "nope"}}),
            "billable_metric")
    invalid(seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {"thresholds": [{"value": -3}]}}),
            {"thresholds:value": ["value_is_invalid"]})
    invalid(seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {"thresholds": [{}] * 21}}),
            {"thresholds": ["too_many_thresholds"]})
    # its type never changes; sending the same one is fine
    invalid(seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {"alert_type": "current_usage_amount"}}),
            {"alert_type": ["value_is_invalid"]})
    invalid(seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {"direction": "decreasing"}}),
            {"direction": ["not_supported"]})
    assert seeded.get("/subscriptions/s1/alerts/storage").json()["alert"] == updated  # nothing changed
    same = seeded.put("/subscriptions/s1/alerts/storage", json={"alert": {
        "alert_type": "billable_metric_current_usage_units", "direction": "increasing"}})
    assert same.status_code == 200 and same.json()["alert"] == updated


def test_alerts_are_deleted_one_or_all(seeded: httpx.Client) -> None:
    post(seeded, {"alerts": [alert(code="a"), alert(alert_type="lifetime_usage_amount", code="b")]})
    deleted = seeded.delete("/subscriptions/s1/alerts/a")
    assert deleted.status_code == 200 and deleted.json()["alert"]["code"] == "a"
    missing(seeded.get("/subscriptions/s1/alerts/a"), "alert")
    missing(seeded.delete("/subscriptions/s1/alerts/a"), "alert")
    post(seeded, {"alert": alert(code="c")})
    everything = seeded.delete("/subscriptions/s1/alerts")
    assert everything.status_code == 200
    assert [a["code"] for a in everything.json()["alerts"]] == ["c", "b"]  # newest first
    assert codes(seeded) == []
    assert seeded.delete("/subscriptions/s1/alerts").json() == {"alerts": []}


def test_alerts_are_paginated(seeded: httpx.Client) -> None:
    post(seeded, {"alerts": [alert(code="a"), alert(alert_type="lifetime_usage_amount", code="b")]})
    page = seeded.get("/subscriptions/s1/alerts", params={"per_page": 1, "page": 2}).json()
    assert len(page["alerts"]) == 1 and page["meta"] == {"current_page": 2, "next_page": None, "prev_page": 1,
                                                         "total_pages": 2, "total_count": 2}
    assert seeded.get("/subscriptions/s1/alerts", params={"page": 0}).status_code == 400


def test_the_subscription_must_be_live_and_the_alert_and_metric_known(seeded: httpx.Client) -> None:
    for method, path, body in [("POST", "/subscriptions/nope/alerts", {"alert": alert()}),
                               ("GET", "/subscriptions/nope/alerts", None),
                               ("DELETE", "/subscriptions/nope/alerts", None),
                               ("GET", "/subscriptions/nope/alerts/spend", None),
                               ("PUT", "/subscriptions/nope/alerts/spend", {"alert": {"name": "x"}}),
                               ("DELETE", "/subscriptions/nope/alerts/spend", None)]:
        missing(seeded.request(method, path, json=body), "subscription")
    for method in ("GET", "PUT", "DELETE"):
        missing(seeded.request(method, "/subscriptions/s1/alerts/nope", json={"alert": {"name": "x"}}), "alert")
    missing(post(seeded, {"alert": alert(alert_type="billable_metric_current_usage_amount",
                                         billable_metric_code="nope")}), "billable_metric")
    seeded.delete("/billable_metrics/calls")  # a deleted metric is unknown too
    missing(post(seeded, {"alert": alert(alert_type="billable_metric_current_usage_amount",
                                         billable_metric_code="calls")}), "billable_metric")
    # a pending subscription has alerts; a terminated one none
    create(seeded, "/subscriptions", "subscription", {
        "external_customer_id": "c1", "plan_code": "usage", "external_id": "later",
        "subscription_at": "2099-01-01T00:00:00Z"})
    assert post(seeded, {"alert": alert()}, "later").status_code == 200
    assert seeded.get("/subscriptions/later/alerts", params={"subscription_status": "pending"}).json()[
        "meta"]["total_count"] == 1
    missing(seeded.get("/subscriptions/later/alerts", params={"subscription_status": "active"}), "subscription")
    invalid(seeded.get("/subscriptions/later/alerts", params={"subscription_status": "terminated"}),
            {"subscription_status": ["not_supported"]})
    invalid(seeded.get("/subscriptions/later/alerts", params={"subscription_status": "gone"}),
            {"subscription_status": ["value_is_invalid"]})
    assert seeded.delete("/subscriptions/s1").status_code == 200
    missing(post(seeded, {"alert": alert()}), "subscription")
    missing(seeded.get("/subscriptions/s1/alerts"), "subscription")


def test_the_api_key_and_the_body_are_checked(seeded: httpx.Client, stack: Stack) -> None:
    with api(stack.api_url, "nope") as anonymous:
        for method, path in [("POST", "/subscriptions/s1/alerts"), ("GET", "/subscriptions/s1/alerts"),
                             ("DELETE", "/subscriptions/s1/alerts"), ("GET", "/subscriptions/s1/alerts/spend"),
                             ("PUT", "/subscriptions/s1/alerts/spend"), ("DELETE", "/subscriptions/s1/alerts/spend"),
                             ("GET", "/subscriptions/s1/lifetime_usage")]:
            response = anonymous.request(method, path, json={"alert": alert()})
            assert (response.status_code, response.json()) == (401, {"status": 401, "error": "Unauthorized"})
    post(seeded, {"alert": alert()})
    for method, path in [("POST", "/subscriptions/s1/alerts"), ("PUT", "/subscriptions/s1/alerts/spend")]:
        malformed = seeded.request(method, path, content=b'{"alert": ', headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400 and malformed.json()["error"].startswith("BadRequest: the body is not")
        rootless = seeded.request(method, path, json={"alarm": alert()})
        assert rootless.json() == {"status": 400,
                                   "error": "BadRequest: param is missing or the value is empty: alert"}
        for body in ([1, 2], "alert", 3, {"alert": "x"}, {"alert": [alert()]}):
            response = seeded.request(method, path, json=body)
            assert response.status_code in (400, 422), (body, response.status_code, response.text)


WRONG_TYPES = [None, True, 0, -1, 1.5, 1e308, "", "x" * 300, [], [1], {}, {"a": {"b": [None]}}, "\u0000"]


@pytest.mark.parametrize("field", ["alert_type", "code", "name", "billable_metric_code", "thresholds"])
def test_a_wrong_type_anywhere_is_a_422_never_a_500(seeded: httpx.Client, field: str) -> None:
    post(seeded, {"alert": alert(code="kept")})
    for value in WRONG_TYPES:
        created = post(seeded, {"alert": {**alert(code="new"), field: value}})
        assert created.status_code in (200, 404, 422), (value, created.text)
        if created.status_code == 200:
            seeded.delete("/subscriptions/s1/alerts/new")
        updated = seeded.put("/subscriptions/s1/alerts/kept", json={"alert": {field: value}})
        assert updated.status_code in (200, 404, 422), (value, updated.text)
        if updated.status_code == 200 and updated.json()["alert"]["code"] != "kept":
            seeded.put(f"/subscriptions/s1/alerts/{updated.json()['alert']['code']}", json={"alert": {"code": "kept"}})
        for threshold in ({"value": value}, {"value": 1, "code": value}, {"value": 1, "recurring": value}):
            response = post(seeded, {"alert": alert(code="t", alert_type="lifetime_usage_amount",
                                                    thresholds=[threshold])})
            assert response.status_code in (200, 422), (threshold, response.text)
            seeded.delete("/subscriptions/s1/alerts/t")
    assert seeded.get("/subscriptions/s1/alerts").status_code == 200  # nothing stored breaks the listing


def test_another_organizations_key_sees_nothing(seeded: httpx.Client, services: Services, stack: Stack,
                                                unique: str) -> None:
    post(seeded, {"alert": alert()})
    _, key = ensure_organization(services.sqlalchemy_url, f"other-{unique}")
    assert key is not None
    with api(stack.api_url, key) as other:
        seed(other, "s2")  # its own catalog, same codes
        missing(other.get("/subscriptions/s1/alerts"), "subscription")
        missing(other.get("/subscriptions/s1/alerts/spend"), "subscription")
        missing(other.put("/subscriptions/s1/alerts/spend", json={"alert": {"name": "mine"}}), "subscription")
        missing(other.delete("/subscriptions/s1/alerts"), "subscription")
        missing(other.get("/subscriptions/s1/lifetime_usage"), "lifetime_usage")
        assert codes(other, "s2") == []
        assert post(other, {"alert": alert()}, "s2").status_code == 200  # the same code, another organization
    assert seeded.get("/subscriptions/s1/alerts/spend").json()["alert"]["name"] is None


def test_lagos_python_client_creates_lists_and_deletes_alerts(seeded: httpx.Client, stack: Stack,
                                                              org_key: str) -> None:
    lago = Client(api_key=org_key, api_url=f"{stack.api_url}/")  # it appends "api/v1/" itself
    created = lago.subscriptions.create_alerts("s1", AlertsList(alerts=[
        Alert(alert_type="billable_metric_current_usage_amount", code="mtu_spend", billable_metric_code="mtu",
              thresholds=AlertThresholdList(__root__=[AlertThreshold(value="1000", code="warn", recurring=None)])),
        Alert(alert_type="lifetime_usage_amount", code="lifetime", name="Lifetime",
              thresholds=AlertThresholdList(__root__=[AlertThreshold(value="50000", code=None, recurring=True)]))]))
    alerts = created["alerts"]
    assert [(a.code, a.billable_metric.code if a.billable_metric else None, a.previous_value) for a in alerts] == [
        ("mtu_spend", "mtu", "0"), ("lifetime", None, "0")]
    assert [(t.code, t.value, t.recurring) for t in alerts[1].thresholds.__root__] == [(None, "50000.0", True)]
    lifetime = lago.subscriptions.lifetime_usage("s1")
    assert (lifetime.current_usage_amount_cents, lifetime.invoiced_usage_amount_cents) == (0, 0)
    lago.subscriptions.delete_alerts("s1")
    assert codes(seeded) == []
