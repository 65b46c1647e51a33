from decimal import Decimal

import pytest

from core.domain.charges import amount_details
from core.domain.pricing import InvalidChargeProperties, parse_ranges, price, validate_properties

SEGMENT_TEAM = {
    "graduated_ranges": [
        {"from_value": 0, "to_value": 10000, "per_unit_amount": "0", "flat_amount": "0"},
        {"from_value": 10001, "to_value": 25000, "per_unit_amount": "0.012", "flat_amount": "0"},
        {"from_value": 25001, "to_value": 100000, "per_unit_amount": "0.011", "flat_amount": "0"},
        {"from_value": 100001, "to_value": None, "per_unit_amount": "0.010", "flat_amount": "0"},
    ]
}


@pytest.mark.parametrize(
    ("mtus", "cents", "precise"),
    [
        (0, 0, "0"),
        (9_999, 0, "0"),
        (10_000, 0, "0"),
        (10_001, 1, "1.2"),
        (10_004, 5, "4.8"),
        (25_000, 18_000, "18000"),
        (25_001, 18_001, "18001.1"),
        (30_000, 23_500, "23500"),
        (100_000, 100_500, "100500"),
        (150_000, 150_500, "150500"),
    ],
)
def test_segment_team_graduated(mtus: int, cents: int, precise: str) -> None:
    fee = price("graduated", SEGMENT_TEAM, Decimal(mtus), "USD")
    assert fee.amount_cents == cents
    assert fee.precise_amount_cents == Decimal(precise)


def test_graduated_flat_amount_applies_once_a_range_is_reached_and_the_first_range_always_is() -> None:
    props = {
        "graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "5"},
            {"from_value": 11, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "2"},
        ]
    }
    assert price("graduated", props, Decimal(0), "USD").amount_cents == 500  # no usage: the first flat amount
    assert price("graduated", props, Decimal(10), "USD").amount_cents == 1500
    assert price("graduated", props, Decimal(12), "USD").amount_cents == 1500 + 100 + 200


def test_half_up_rounding_once_per_fee() -> None:
    assert price("standard", {"amount": "0.005"}, Decimal(1), "USD").amount_cents == 1  # 0.5 cent up
    assert price("standard", {"amount": "0.0049"}, Decimal(1), "USD").amount_cents == 0
    assert price("standard", {"amount": "0.004"}, Decimal(3), "USD").amount_cents == 1  # 1.2, not 3 x 0


def test_zero_decimal_currency() -> None:
    assert price("standard", {"amount": "12.5"}, Decimal(2), "JPY").amount_cents == 25


def test_volume_prices_every_unit_at_the_reached_tier() -> None:
    props = {
        "volume_ranges": [
            {"from_value": 0, "to_value": 100, "per_unit_amount": "2", "flat_amount": "1"},
            {"from_value": 101, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"},
        ]
    }
    assert price("volume", props, Decimal(0), "USD").amount_cents == 100  # no usage: the first range's flat amount
    assert price("volume", props, Decimal(100), "USD").amount_cents == 20100
    assert price("volume", props, Decimal(101), "USD").amount_cents == 10100


def test_package_and_percentage() -> None:
    pkg = {"amount": "10", "package_size": 100, "free_units": 50}
    assert price("package", pkg, Decimal(50), "USD").amount_cents == 0
    assert price("package", pkg, Decimal(51), "USD").amount_cents == 1000
    assert price("package", pkg, Decimal(250), "USD").amount_cents == 2000
    pct = {"rate": "2.5", "fixed_amount": "0.1"}
    assert price("percentage", pct, Decimal("1000"), "USD", events_count=3).amount_cents == 2530


@pytest.mark.parametrize(
    ("ranges", "code"),
    [
        ([], "invalid_graduated_ranges"),
        ([{"from_value": 5, "to_value": None, "per_unit_amount": "1"}], "invalid_graduated_ranges"),
        ([{"from_value": 0, "to_value": 10, "per_unit_amount": "1"}], "invalid_graduated_ranges"),
        ([
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1"},
            {"from_value": 12, "to_value": None, "per_unit_amount": "1"},
        ], "invalid_graduated_ranges"),
        ([
            {"from_value": 0, "to_value": None, "per_unit_amount": "1"},
            {"from_value": 1, "to_value": None, "per_unit_amount": "1"},
        ], "invalid_graduated_ranges"),
        ([{"from_value": 0, "to_value": None, "per_unit_amount": "-1"}], "invalid_amount"),
    ],
)
def test_invalid_graduated_ranges_are_refused_with_their_code(ranges: list, code: str) -> None:
    with pytest.raises(InvalidChargeProperties) as refused:
        validate_properties("graduated", {"graduated_ranges": ranges})
    assert refused.value.code == code


def test_ranges_starting_at_one_are_accepted() -> None:
    ranges = parse_ranges(
        [
            {"from_value": 1, "to_value": 10, "per_unit_amount": "1"},
            {"from_value": 11, "to_value": None, "per_unit_amount": "2"},
        ],
        "invalid_graduated_ranges",
    )
    assert ranges[0].units_of(Decimal(10)) == 10
    assert ranges[1].units_of(Decimal(12)) == 2


@pytest.mark.parametrize(
    ("units", "function", "precision", "expected"),
    [
        ("2.345", "round", 2, "2.35"),  # half-up
        ("2.344", "round", 2, "2.34"),
        ("2.341", "ceil", 2, "2.35"),
        ("2.349", "floor", 2, "2.34"),
        ("2.5", "round", None, "3"),
        ("1250", "round", -2, "1300"),
        ("1249", "floor", -2, "1200"),
        ("2.5", None, None, "2.5"),  # no rounding function: units as aggregated
    ],
)
def test_metric_units_rounding(units: str, function: str | None, precision: int | None, expected: str) -> None:
    from core.domain.pricing import round_units

    assert round_units(Decimal(units), function, precision) == Decimal(expected)


def test_unknown_rounding_function_is_refused() -> None:
    from core.domain.pricing import round_units

    with pytest.raises(InvalidChargeProperties) as error:
        round_units(Decimal(1), "bankers", 0)
    assert error.value.code == "invalid_rounding_function"


def test_a_graduated_fee_details_the_tiers_it_reached_as_lago_does() -> None:
    details = amount_details("graduated", SEGMENT_TEAM, Decimal(30_000))
    assert details == {"graduated_ranges": [
        {"units": "10000.0", "from_value": 0, "to_value": 10000, "flat_unit_amount": "0.0", "per_unit_amount": "0.0",
         "per_unit_total_amount": "0.0", "total_with_flat_amount": "0.0"},
        {"units": "15000.0", "from_value": 10001, "to_value": 25000, "flat_unit_amount": "0.0",
         "per_unit_amount": "0.012", "per_unit_total_amount": "180.0", "total_with_flat_amount": "180.0"},
        {"units": "5000.0", "from_value": 25001, "to_value": 100000, "flat_unit_amount": "0.0",
         "per_unit_amount": "0.011", "per_unit_total_amount": "55.0", "total_with_flat_amount": "55.0"}]}
    # the tiers add up to the fee: 180 + 55 = $235.00 = 23,500 cents
    assert sum(Decimal(t["total_with_flat_amount"]) for t in details["graduated_ranges"]) * 100 == \
        price("graduated", SEGMENT_TEAM, Decimal(30_000), "USD").precise_amount_cents
    assert amount_details("graduated", SEGMENT_TEAM, Decimal(0))["graduated_ranges"][0]["units"] == "0.0"
    assert amount_details("standard", {"amount": "1"}, Decimal(5)) == {}
