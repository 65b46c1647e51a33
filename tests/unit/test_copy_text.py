"""The archive's COPY text: exact lines, escapes only where a field needs them, exact timestamps."""

from __future__ import annotations

import pytest

from aggregator.copy_text import copy_text, escape
from schemas.events import Event

ORG = "00000000-0000-0000-0000-0000000000aa"


def event(transaction_id: str, subscription: str = "s1", properties: dict[str, object] | None = None,
          amount: str | None = None, timestamp_us: int = 1_772_409_600_000_005) -> Event:
    return Event(lago_id="l-1", organization_id=ORG, transaction_id=transaction_id, code="calls",
                 external_subscription_id=subscription, timestamp_us=timestamp_us, received_at_us=timestamp_us + 7,
                 properties={"n": 1} if properties is None else properties, precise_total_amount_cents=amount)


@pytest.mark.parametrize(("timestamp_us", "text"), [
    (1_772_409_600_000_005, "2026-03-02 00:00:00.000005+00"),
    (-1, "1969-12-31 23:59:59.999999+00"),
    (-62_135_596_800_000_000, "0001-01-01 00:00:00.000000+00"),  # the year is padded
])
def test_moments_are_exact_to_the_microsecond_before_and_after_the_epoch(timestamp_us: int, text: str) -> None:
    keys, _ = copy_text([event("t1", timestamp_us=timestamp_us)])
    assert keys == f"{ORG}\ts1\tt1\t{text}\n"


def test_plain_rows_are_written_as_they_are_with_null_for_a_missing_amount() -> None:
    keys, events = copy_text([event("t1"), event("t2", amount="12.5", properties={"u": "x y"})])
    assert keys == (f"{ORG}\ts1\tt1\t2026-03-02 00:00:00.000005+00\n"
                    f"{ORG}\ts1\tt2\t2026-03-02 00:00:00.000005+00\n")
    assert events == (
        f"{ORG}\ts1\tt1\tl-1\tcalls\t2026-03-02 00:00:00.000005+00\t{{\"n\":1}}\t\\N\t2026-03-02 00:00:00.000012+00\n"
        f"{ORG}\ts1\tt2\tl-1\tcalls\t2026-03-02 00:00:00.000005+00\t{{\"u\":\"x y\"}}\t12.5\t"
        "2026-03-02 00:00:00.000012+00\n")


def test_a_field_with_a_separator_or_a_backslash_is_escaped_in_every_row_of_the_batch() -> None:
    keys, events = copy_text([event("t\t1", subscription="s\n1\r"), event("t2", properties={"q": 'say "hi"\\'})])
    assert keys == (f"{ORG}\ts\\n1\\r\tt\\t1\t2026-03-02 00:00:00.000005+00\n"
                    f"{ORG}\ts1\tt2\t2026-03-02 00:00:00.000005+00\n")
    # the JSON's own escapes (\" and \\) are escaped once more for COPY, which gives them back
    assert events.splitlines()[1].split("\t")[6] == '{"q":"say \\\\"hi\\\\"\\\\\\\\"}'


def test_escape_doubles_backslashes_and_names_the_separators() -> None:
    assert escape("a\\b\tc\nd\re") == "a\\\\b\\tc\\nd\\re"
    assert escape("\\N") == "\\\\N"  # a value that reads like NULL stays a value


def test_a_lone_carriage_return_is_enough_to_escape_the_batch() -> None:
    keys, events = copy_text([event("t\rx")])
    assert keys == f"{ORG}\ts1\tt\\rx\t2026-03-02 00:00:00.000005+00\n"
    assert events.split("\t")[2] == "t\\rx"
