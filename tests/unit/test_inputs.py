"""rater.inputs: Lago-style input reading. `null` means not given; every field's errors are collected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.http import ApiError
from rater.inputs import Input


def errors_of(data: Input) -> dict[str, list[str]]:
    with pytest.raises(ApiError) as caught:
        data.check()
    assert caught.value.status == 422
    assert caught.value.body["code"] == "validation_errors"
    return caught.value.body["error_details"]


@pytest.mark.parametrize("raw", [None, [], "x", 3])
def test_root_must_be_an_object(raw: object) -> None:
    with pytest.raises(ApiError) as caught:
        Input(raw)
    assert caught.value.status == 400
    assert caught.value.body["error"].startswith("BadRequest: ")


def test_null_means_not_given() -> None:
    data = Input({"name": None, "code": None, "flag": None, "n": None})
    assert not data.given("name")
    assert data.text("name") is None
    assert data.boolean("flag") is None
    assert data.integer("n") is None
    data.check()  # nothing required, nothing wrong


def test_all_errors_are_collected_before_failing() -> None:
    data = Input({"code": "", "amount_cents": "ten", "pay_in_advance": "yes", "amount_currency": "usd",
                  "interval": "daily"})
    data.text("name", required=True)
    data.text("code", required=True)
    data.integer("amount_cents", required=True)
    data.boolean("pay_in_advance")
    data.currency("amount_currency")
    data.choice("interval", ("weekly", "monthly"))
    assert errors_of(data) == {
        "name": ["value_is_mandatory"], "code": ["value_is_mandatory"], "amount_cents": ["invalid_format"],
        "pay_in_advance": ["invalid_format"], "amount_currency": ["value_is_invalid"],
        "interval": ["value_is_invalid"],
    }


@pytest.mark.parametrize(("value", "expected"), [(5, 5), ("5", 5), (5.0, 5), (0, 0)])
def test_integer_accepts_integral_numbers(value: object, expected: int) -> None:
    assert Input({"n": value}).integer("n") == expected


@pytest.mark.parametrize(("value", "code"), [(True, "invalid_format"), (2.5, "invalid_format"),
                                             ("2.5", "invalid_format"), ([1], "invalid_format"),
                                             (-1, "value_is_invalid"), (2**31, "value_is_invalid"),
                                             ("9" * 30, "value_is_invalid")])
def test_integer_rejects(value: object, code: str) -> None:
    data = Input({"n": value})
    assert data.integer("n") is None
    assert errors_of(data) == {"n": [code]}


def test_text_too_long_and_wrong_type() -> None:
    data = Input({"a": "x" * 256, "b": {"nested": 1}, "c": 12, "d": -1.77e295, "e": True})
    assert data.text("a") is None
    assert data.text("b") is None
    assert data.text("c") is None  # a string field takes strings only: a number is not stored as one
    assert data.text("d") is None
    assert data.text("e") is None
    assert errors_of(data) == {"a": ["value_is_too_long"], "b": ["invalid_format"], "c": ["invalid_format"],
                               "d": ["invalid_format"], "e": ["invalid_format"]}


def test_text_never_holds_nul_and_identifiers_hold_no_control_character() -> None:
    data = Input({"name": "a\x00b", "note": "line\nbreak", "id": "\f", "code": "tab\there", "ok": "plan-1"})
    assert data.text("name") is None
    assert data.text("note") == "line\nbreak"  # free text may hold a line break
    assert data.identifier("id") is None
    assert data.identifier("code") is None
    assert data.identifier("ok") == "plan-1"
    assert errors_of(data) == {"name": ["value_is_invalid"], "id": ["value_is_invalid"],
                               "code": ["value_is_invalid"]}


def test_unsupported_refuses_given_values_only() -> None:
    data = Input({"tax_codes": [], "metadata": None, "sync": False, "billing_entity_code": "eu", "coupons": ["c"],
                  "overrides": {}, "precision": 0, "flag": True, "shape": {"a": 1}})
    data.unsupported("tax_codes", "metadata", "sync", "billing_entity_code", "coupons", "absent", "overrides",
                     "precision", "flag", "shape")
    assert errors_of(data) == {"billing_entity_code": ["not_supported"], "coupons": ["not_supported"],
                               "precision": ["not_supported"], "flag": ["not_supported"],
                               "shape": ["not_supported"]}  # 0 is a value: only null, false, [] and {} are not


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "UTC", "Asia/Kolkata"])
def test_timezone_accepts_iana_names(zone: str) -> None:
    assert Input({"timezone": zone}).timezone("timezone") == zone


def test_integer_maximum_can_be_widened_for_bigint_columns() -> None:
    assert Input({"n": 2**40}).integer("n", maximum=2**63 - 1) == 2**40
    data = Input({"n": 2**63})
    assert data.integer("n", maximum=2**63 - 1) is None
    assert errors_of(data) == {"n": ["value_is_invalid"]}


@pytest.mark.parametrize("zone", ["Mars/Olympus", "+02:00", "../../etc/passwd", "Europe/", "America", "Europe"])
def test_timezone_rejects_unknown_names(zone: str) -> None:
    data = Input({"timezone": zone})
    assert data.timezone("timezone") is None
    assert errors_of(data) == {"timezone": ["invalid_timezone"]}


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-06-10T00:00:00Z", datetime(2026, 6, 10, tzinfo=UTC)),
    ("2026-06-10T02:00:00+02:00", datetime(2026, 6, 10, 2, tzinfo=timezone(timedelta(hours=2)))),
    ("2026-06-10", datetime(2026, 6, 10, tzinfo=UTC)),  # no offset: UTC
])
def test_moment_parses_iso_8601(value: str, expected: datetime) -> None:
    assert Input({"at": value}).moment("at") == expected


@pytest.mark.parametrize("value", ["tomorrow", "2026-13-01", "10/06/2026"])
def test_moment_rejects_other_formats(value: str) -> None:
    data = Input({"at": value})
    assert data.moment("at") is None
    assert errors_of(data) == {"at": ["invalid_format"]}


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z",
                                   "0001-01-01", "9999-01-01T00:00:00Z", "9999-12-31"])
def test_moment_refuses_what_no_subscription_can_start_or_end_at(value: str) -> None:
    data = Input({"at": value})
    assert data.moment("at") is None
    assert errors_of(data) == {"at": ["value_is_invalid"]}


def test_moment_takes_the_range_bounds_it_allows() -> None:
    assert Input({"at": "1970-01-01T00:00:00Z"}).moment("at") == datetime(1970, 1, 1, tzinfo=UTC)
    assert Input({"at": "9998-12-31T23:59:59Z"}).moment("at") == datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("value", ["ÄÖÜ", "ＵＳＤ", "ΑΒΓ"])
def test_currency_is_three_ascii_capitals(value: str) -> None:
    data = Input({"currency": value})
    assert data.currency("currency") is None
    assert errors_of(data) == {"currency": ["value_is_invalid"]}


def test_choice_and_boolean() -> None:
    data = Input({"billing_time": "anniversary", "recurring": True, "other": "nope"})
    assert data.choice("billing_time", ("calendar", "anniversary")) == "anniversary"
    assert data.boolean("recurring") is True
    assert data.choice("other", ("a", "b")) is None
    assert errors_of(data) == {"other": ["value_is_invalid"]}


def test_a_percentage_is_a_number_or_a_numeric_string_up_to_100_with_5_decimals_at_most() -> None:
    data = Input({"a": "20.000000", "b": 19.6, "c": "0", "d": 150, "e": "1.234567", "f": "abc", "g": True,
                  "h": "Infinity", "i": ""})
    assert [data.percentage(n) for n in "abc"] == [Decimal(20), Decimal("19.6"), Decimal(0)]
    assert data.percentage("c", above_zero=True) is None  # a coupon takes more than nothing
    assert [data.percentage(n) for n in "defgh"] == [None] * 5
    assert data.percentage("i", required=True) is None
    assert data.errors == {"c": ["value_is_out_of_range"], "d": ["value_is_out_of_range"],
                           "e": ["value_is_out_of_range"], "f": ["invalid_format"], "g": ["invalid_format"],
                           "h": ["invalid_format"], "i": ["value_is_mandatory"]}
