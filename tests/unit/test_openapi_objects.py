"""The API's OpenAPI document against the serializers that write its objects (no services): each object
as written validates against its schema, and a key added to a serializer but not to the document fails."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from openapi_spec_validator import OpenAPIV31SpecValidator

from core.domain.pricing import RANGE_KEYS
from ingest.openapi import ingest_document
from rater import serializers
from rater.api.webhooks import render as webhook_endpoint
from rater.billing import render
from rater.openapi import api_document

DOCUMENT = api_document()
AT = datetime(2026, 6, 1, 12, 30, 15, 250_000, tzinfo=UTC)
IDS = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(10)]


def check(name: str, instance: Any) -> None:
    """Validate `instance` against components/schemas/<name>, formats (uuid, date-time, date) included."""
    schema = {**DOCUMENT, "$ref": f"#/components/schemas/{name}"}
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(instance)


def metric_row(**overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{
        "id": IDS[0], "name": "MTU", "code": "mtu", "description": None, "aggregation_type": "unique_count_agg",
        "weighted_interval": None, "recurring": False, "rounding_function": None, "rounding_precision": None,
        "created_at": AT, "field_name": "user_id", "expression": None, **overrides})


def plan_rows() -> tuple[SimpleNamespace, list[SimpleNamespace], list[SimpleNamespace]]:
    plan = SimpleNamespace(id=IDS[1], name="Team", invoice_display_name=None, created_at=AT, code="team",
                           interval="yearly", description=None, amount_cents=12000, amount_currency="USD",
                           trial_period=14, pay_in_advance=True, bill_charges_monthly=True)
    graduated = SimpleNamespace(
        id=IDS[2], billable_metric_id=IDS[0], billable_metric_code="mtu", invoice_display_name=None, created_at=AT,
        charge_model="graduated", pay_in_advance=False, invoiceable=True, min_amount_cents=500,
        properties={"graduated_ranges": [{"from_value": 0, "to_value": 10_000, "per_unit_amount": "0",
                                          "flat_amount": "0"},
                                         {"from_value": 10_001, "to_value": None, "per_unit_amount": 0.012,
                                          "flat_amount": "0"}]})
    package = SimpleNamespace(**{**vars(graduated), "id": IDS[3], "charge_model": "package", "min_amount_cents": 0,
                                 "properties": {"amount": "5", "package_size": 100, "free_units": "10"}})
    return plan, [graduated, package], usage_threshold_rows()


def tax_row(**overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{"id": IDS[9], "name": "VAT", "code": "vat", "rate": Decimal("19.6"),
                              "description": None, "applied_to_organization": True, "created_at": AT, **overrides})


def applied_tax_row(owner: str, **overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{"id": IDS[8], f"{owner}_id": IDS[6] if owner == "fee" else IDS[5], "tax_id": IDS[9],
                              "tax_code": "vat", "tax_name": "VAT", "tax_rate": Decimal(20), "tax_description": None,
                              "amount_cents": 80, "precise_amount_cents": "80", "fees_amount_cents": 400,
                              "position": 0, "created_at": AT, **overrides})


def usage_threshold_rows() -> list[SimpleNamespace]:
    return [SimpleNamespace(id=IDS[8], threshold_display_name=None, amount_cents=20_000, recurring=False,
                            created_at=AT, updated_at=AT),
            SimpleNamespace(id=IDS[9], threshold_display_name="Every $100", amount_cents=10_000, recurring=True,
                            created_at=AT, updated_at=AT)]


def customer_row(**overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{
        "id": IDS[4], "sequential_id": 1, "slug": "ACM-0001-001", "external_id": "acme", "name": None,
        "email": None, "currency": None, "timezone": None, "invoice_grace_period": None, "net_payment_term": None,
        "created_at": AT, "updated_at": AT, "attributes": {}, "test_clock_id": None, **overrides})


def invoice_row(**overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{
        "id": IDS[5], "customer_id": IDS[4], "sequential_id": None, "number": "ACM-0001-001-DRAFT",
        "issuing_date": date(2026, 7, 1), "payment_due_date": date(2026, 7, 31), "net_payment_term": 30,
        "status": "draft", "payment_status": "pending", "currency": "USD", "fees_amount_cents": 1400,
        "credit_notes_amount_cents": 0, "total_amount_cents": 1400, "finalized_at": None, "created_at": AT,
        "invoice_type": "subscription", "progressive_billing_credit_amount_cents": 0,
        "payment_overdue": False, "voided_at": None, "updated_at": AT, "taxes_amount_cents": 0,
        "coupons_amount_cents": 0, "taxes_rate": Decimal(0), **overrides})


def fee_row(**overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{
        "id": IDS[6], "invoice_id": IDS[5], "subscription_id": IDS[7], "fee_type": "charge", "charge_id": IDS[2],
        "billable_metric_id": IDS[0], "item_code": "mtu", "item_name": "MTU", "invoice_display_name": None,
        "units": "200.0", "events_count": 200, "amount_cents": 400, "precise_amount_cents": "400.0",
        "currency": "USD", "from_datetime": AT, "to_datetime": AT, "created_at": AT, "true_up_parent_fee_id": None,
        "taxes_amount_cents": 0, "taxes_precise_amount_cents": "0", "taxes_rate": Decimal(0),
        "precise_coupons_amount_cents": "0", "amount_details": {}, **overrides})


def test_both_documents_are_valid_openapi_3_1() -> None:
    for document in (api_document(), ingest_document()):
        OpenAPIV31SpecValidator(document).validate()


def test_a_billable_metric_as_written_matches_its_schema() -> None:
    check("BillableMetric", serializers.billable_metric(metric_row()))
    check("BillableMetric", serializers.billable_metric(metric_row(aggregation_type="weighted_sum_agg",
                                                                   weighted_interval="seconds")))


def test_a_plan_and_its_charges_as_written_match_their_schemas() -> None:
    body = serializers.plan(*plan_rows(), [tax_row()], {IDS[2]: [tax_row(rate=Decimal(5), code="reduced")]})
    check("Plan", body)
    assert (body["description"], body["invoice_display_name"], body["trial_period"]) == ("", "", 14.0)
    assert [(t["amount_cents"], t["recurring"]) for t in body["usage_thresholds"]] == [(20_000, False), (10_000, True)]
    assert (body["taxes"][0]["rate"], body["charges"][0]["taxes"][0]["rate"], body["charges"][1]["taxes"]) == (
        19.6, 5, [])
    check("Plan", serializers.plan(*plan_rows()[:2], [], [], {}))
    check("Tax", serializers.tax(tax_row()))


def test_the_range_keys_of_the_document_are_those_the_pricing_keeps() -> None:
    ranges = DOCUMENT["components"]["schemas"]["ChargeProperties"]["properties"]["graduated_ranges"]
    assert tuple(ranges["items"]["properties"]) == RANGE_KEYS


def test_a_customer_as_written_matches_its_schema() -> None:
    check("Customer", serializers.customer(customer_row(), [tax_row()]))
    check("Customer", serializers.customer(customer_row(
        name="Acme", currency="EUR", timezone="Europe/Paris", invoice_grace_period=3, net_payment_term=30,
        attributes={"city": "Paris", "customer_type": "company", "finalize_zero_amount_invoice": "skip",
                    "shipping_address": {"city": "Lyon", "zipcode": "69001"}}), []))


def test_invoices_and_fees_as_written_match_their_schemas() -> None:
    customer = serializers.customer(customer_row(), [])
    draft = render.invoice(invoice_row(), customer)
    check("Invoice", draft)
    assert "sequential_id" not in draft and draft["file_url"] == ""
    check("Invoice", render.invoice(invoice_row(status="finalized", sequential_id=1, number="ACM-0001-001-001",
                                                payment_status="succeeded", finalized_at=AT), customer))
    item = SimpleNamespace(id=IDS[8], key="po", value="PO-1234", created_at=AT)
    voided = render.invoice(invoice_row(status="voided", sequential_id=1, number="ACM-0001-001-001",
                                        payment_status="failed", finalized_at=AT, voided_at=AT), customer, (), [item])
    check("Invoice", voided)
    assert (voided["total_due_amount_cents"], voided["metadata"]) == (0, [
        {"lago_id": IDS[8], "key": "po", "value": "PO-1234", "created_at": "2026-06-01T12:30:15.250Z"}])
    threshold = SimpleNamespace(id=IDS[9], threshold_display_name="$200", amount_cents=20_000, recurring=False,
                                created_at=AT, updated_at=AT)
    crossing = SimpleNamespace(usage_amount_cents=20_200, reached_at=AT)
    progressive = render.invoice(invoice_row(
        status="finalized", sequential_id=2, number="ACM-0001-001-002", invoice_type="progressive_billing",
        fees_amount_cents=34_500, progressive_billing_credit_amount_cents=20_200, total_amount_cents=14_300),
        customer, [render.applied_usage_threshold(crossing, threshold)])
    check("Invoice", progressive)
    assert (progressive["sub_total_excluding_taxes_amount_cents"],
            progressive["applied_usage_thresholds"][0]["usage_threshold"]["amount_cents"]) == (14_300, 20_000)
    taxed = render.invoice(invoice_row(taxes_amount_cents=80, taxes_rate=Decimal(20), total_amount_cents=1480),
                           customer, applied_taxes=[applied_tax_row("invoice")])
    check("Invoice", taxed)
    assert (taxed["sub_total_including_taxes_amount_cents"], taxed["applied_taxes"][0]["fees_amount_cents"]) == (
        1480, 400)
    invoice = invoice_row()
    check("Fee", render.fee(fee_row(), invoice, "acme", "s1", pay_in_advance=False))
    tiers = {"graduated_ranges": [{"units": "200.0", "from_value": 0, "to_value": None, "flat_unit_amount": "0.0",
                                   "per_unit_amount": "0.02", "per_unit_total_amount": "4.0",
                                   "total_with_flat_amount": "4.0"}]}
    check("Fee", render.fee(fee_row(amount_details=tiers), invoice, "acme", "s1", pay_in_advance=False))
    with pytest.raises(ValidationError):  # a tier's amounts are decimal strings, as Lago's
        check("Fee", render.fee(fee_row(amount_details={"graduated_ranges": [{**tiers["graduated_ranges"][0],
                                                                               "units": 200}]}),
                                invoice, "acme", "s1", pay_in_advance=False))
    linked = render.invoice(invoice_row(), customer, file_url="https://billing.example.com/api/v1/invoices/x/"
                                                              "document.pdf?expires=1&signature=ab")
    check("Invoice", linked)
    taxed_fee = render.fee(fee_row(taxes_amount_cents=80, taxes_precise_amount_cents="80", taxes_rate=Decimal(20),
                                   precise_coupons_amount_cents="100.5"), invoice, "acme", "s1",
                           pay_in_advance=False, applied_taxes=[applied_tax_row("fee")])
    check("Fee", taxed_fee)
    assert (taxed_fee["total_amount_cents"], taxed_fee["sub_total_excluding_taxes_amount_cents"],
            taxed_fee["applied_taxes"][0]["tax_rate"]) == (480, 300, 20)
    check("Fee", render.fee(fee_row(fee_type="subscription", charge_id=None, billable_metric_id=None,
                                    events_count=None, units="1.0"), invoice, "acme", "s1", pay_in_advance=True))


def test_a_credit_note_as_written_matches_its_schema() -> None:
    customer = serializers.customer(customer_row(), [])
    invoice = invoice_row(status="finalized", sequential_id=1, number="ACM-0001-001-001")
    fee = render.fee(fee_row(fee_type="subscription", charge_id=None, billable_metric_id=None, events_count=None,
                             units="1.0"), invoice, "acme", "s1", pay_in_advance=True,
                     applied_taxes=[applied_tax_row("fee")])
    note = SimpleNamespace(id=IDS[8], sequential_id=1, number="ACM-0001-001-001-CN001", invoice_id=IDS[5],
                           issuing_date=date(2026, 7, 10), credit_status="available", reason="order_change",
                           currency="USD", credit_amount_cents=840, balance_amount_cents=840, created_at=AT,
                           updated_at=AT, voided_at=None, fee_id=IDS[6], taxes_amount_cents=140,
                           taxes_rate=Decimal(20))
    body = render.credit_note(note, invoice, customer, fee)
    check("CreditNote", body)
    assert (body["sub_total_excluding_taxes_amount_cents"], body["items"][0]["amount_cents"],
            [(t["base_amount_cents"], t["amount_cents"]) for t in body["applied_taxes"]]) == (700, 700, [(700, 140)])
    assert body["metadata"] is None  # Lago types a credit note's metadata as an object or null
    check("CreditNote", render.credit_note(SimpleNamespace(**{**vars(note), "credit_status": "voided",
                                                              "balance_amount_cents": 0, "voided_at": AT}),
                                           invoice, customer, fee))


def test_a_webhook_endpoint_as_written_matches_its_schema() -> None:
    check("WebhookEndpoint", webhook_endpoint(SimpleNamespace(
        id=IDS[8], organization_id=IDS[9], webhook_url="https://example.test/hook", signature_algo="hmac", name=None,
        created_at=AT, hmac_key="k" * 43)))


def subscription_row(**overrides: Any) -> SimpleNamespace:
    plan, _, _ = plan_rows()
    return SimpleNamespace(**{
        "id": IDS[7], "external_id": "s1", "customer_id": IDS[4], "external_customer_id": "acme", "name": None,
        "plan_id": plan.id, "plan_code": "team", "plan_amount_cents": 12000, "plan_amount_currency": "USD",
        "status": "active", "billing_time": "calendar", "subscription_at": AT, "started_at": AT, "terminated_at": None,
        "ending_at": None, "canceled_at": None, "created_at": AT, "previous_plan_code": None, "next_plan_code": None,
        "changes_at": None, "timezone": None, "interval": "monthly", "anchor_at": None, "follows_previous": False,
        "trial_period": 0, "pay_in_advance": True, "bill_charges_monthly": None, "on_termination_credit_note": "credit",
        "on_termination_invoice": "generate", "progressive_billing_disabled": False, "test_clock_id": None,
        "clock_time": None, **overrides})


def test_subscriptions_as_written_match_their_schemas() -> None:
    plan, charges, thresholds = plan_rows()
    check("Subscription", serializers.subscription(subscription_row()))  # as an invoice lists it
    listed = serializers.subscription(subscription_row(progressive_billing_disabled=True), thresholds=[])
    check("Subscription", listed)
    assert (listed["progressive_billing_disabled"], listed["applicable_usage_thresholds"]) == (True, [])
    extended = {**serializers.subscription(subscription_row(), AT, thresholds),
                "plan": serializers.plan(plan, charges, thresholds, [], {})}
    check("SubscriptionExtended", extended)
    assert extended["applicable_usage_thresholds"] == [
        {"threshold_display_name": None, "amount_cents": 20_000, "recurring": False},
        {"threshold_display_name": "Every $100", "amount_cents": 10_000, "recurring": True}]
    with pytest.raises(ValidationError, match="'applicable_usage_thresholds' is a required property"):
        check("SubscriptionExtended", {**serializers.subscription(subscription_row()), "plan": extended["plan"]})


def alert_row(**overrides: Any) -> SimpleNamespace:
    return SimpleNamespace(**{
        "id": IDS[1], "organization_id": IDS[9], "subscription_external_id": "s1", "alert_type": "current_usage_amount",
        "code": "spend", "name": None, "billable_metric_id": None, "created_at": AT,
        "thresholds": [{"code": None, "value": "1000.0", "recurring": False},
                       {"code": "step", "value": "500.5", "recurring": True}], **overrides})


def test_alerts_as_written_match_their_schema() -> None:
    fresh = serializers.alert(alert_row(), None, None, [])
    check("Alert", fresh)
    assert (fresh["previous_value"], fresh["last_processed_at"], fresh["billable_metric"]) == (0, None, None)
    assert fresh["thresholds"] == [{"code": None, "value": "1000.0", "recurring": False},
                                   {"code": "step", "value": "500.5", "recurring": True}]
    state = SimpleNamespace(last_value=Decimal("1500.00000"), updated_at=AT)
    triggered = SimpleNamespace(id=IDS[2], subscription_id=IDS[7], current_value=Decimal("1500"),
                                previous_value=Decimal("0.5"), triggered_at=AT,
                                crossed_thresholds=[{"code": None, "value": "1000", "recurring": False},
                                                    {"code": "step", "value": 1500.5, "recurring": True}])
    fired = serializers.alert(alert_row(alert_type="billable_metric_current_usage_units", billable_metric_id=IDS[0]),
                              metric_row(), state, [triggered])
    check("Alert", fired)
    assert (fired["previous_value"], fired["last_processed_at"]) == (1500, "2026-06-01T12:30:15.250Z")
    assert fired["triggered_alerts"] == [{
        "lago_id": IDS[2], "lago_subscription_id": IDS[7], "current_value": 1500, "previous_value": 0.5,
        "crossed_thresholds": [{"code": None, "value": "1000.0", "recurring": False},
                               {"code": "step", "value": "1500.5", "recurring": True}],
        "triggered_at": "2026-06-01T12:30:15.250Z"}]


def test_threshold_completion_and_lifetime_usage() -> None:
    thresholds = usage_threshold_rows()  # 20,000 fixed, then every 10,000: its first level is 30,000
    reached = [(20_000, AT), (30_000, datetime(2026, 6, 2, tzinfo=UTC))]
    assert serializers.threshold_completion(thresholds, 25_000, reached[:1]) == [
        {"amount_cents": 20_000, "completion_ratio": 1.0, "reached_at": "2026-06-01T12:30:15.250Z"},
        {"amount_cents": 30_000, "completion_ratio": 25_000 / 30_000, "reached_at": None}]
    assert serializers.threshold_completion(thresholds, 31_000, reached)[1] == {
        "amount_cents": 30_000, "completion_ratio": 1.0, "reached_at": "2026-06-02T00:00:00.000Z"}
    assert serializers.threshold_completion(thresholds, 0, [])[0]["completion_ratio"] == 0
    body = serializers.lifetime_usage(IDS[3], subscription_row(), 4200, 25_000, AT,
                                      serializers.threshold_completion(thresholds, 25_000, []))
    check("LifetimeUsage", body)
    assert (body["from_datetime"], body["invoiced_usage_amount_cents"], body["external_historical_usage_amount_cents"]
            ) == ("2026-06-01T12:30:15.250Z", 4200, 0)


def test_a_key_the_document_does_not_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="'surprise' was unexpected"):
        check("BillableMetric", {**serializers.billable_metric(metric_row()), "surprise": None})
    with pytest.raises(ValidationError, match="None is not of type 'string'"):
        check("Plan", {**serializers.plan(*plan_rows(), [], {}), "description": None})


def test_a_test_clock_and_what_lives_on_one_match_their_schemas() -> None:
    clock = SimpleNamespace(id=IDS[8], name="June", frozen_time=AT, status="advancing", created_at=AT, updated_at=AT)
    check("TestClock", serializers.test_clock(clock, 2))
    with pytest.raises(ValidationError):
        check("TestClock", serializers.test_clock(SimpleNamespace(**{**vars(clock), "status": "stopped"}), 2))
    on_clock = serializers.subscription(subscription_row(test_clock_id=IDS[8], clock_time=AT))
    check("Subscription", on_clock)
    assert (on_clock["test_clock_id"], on_clock["current_billing_period_started_at"]) == (
        IDS[8], "2026-06-01T00:00:00.000Z")  # the period of its clock's time, not the wall clock's
    check("Customer", serializers.customer(customer_row(test_clock_id=IDS[8]), []))
