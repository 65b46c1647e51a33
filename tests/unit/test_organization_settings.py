"""`meterline org set`: what it accepts and what it refuses (meterline.orgs.checked_settings)."""

from __future__ import annotations

import pytest

from meterline.orgs import checked_settings


def test_texts_are_trimmed_an_empty_one_clears_and_a_country_is_kept_upper_case() -> None:
    assert checked_settings({"legal_name": " Acme Analytics, Inc. ", "country": "us", "city": "",
                             "invoice_footer": "Thank you.\nIBAN DE00 0000"}, 30) == {
        "legal_name": "Acme Analytics, Inc.", "country": "US", "city": None,
        "invoice_footer": "Thank you.\nIBAN DE00 0000", "net_payment_term": 30}
    assert checked_settings({"legal_name": None}, None) == {}  # not given: unchanged


@pytest.mark.parametrize(("texts", "term", "message"), [
    ({"country": "USA"}, None, "two-letter"),
    ({"country": "1A"}, None, "two-letter"),
    ({"legal_name": "x" * 256}, None, "longer than 255"),
    ({"invoice_footer": "x" * 601}, None, "longer than 600"),
    ({"legal_name": "Acme\nInc"}, None, "control character"),
    ({"address_line1": "Main St\x00"}, None, "control character"),
    ({}, -1, "from 0 to 36500"),
    ({}, 36_501, "from 0 to 36500"),
    ({"logo": "x"}, None, "unknown setting"),
])
def test_what_a_later_read_or_a_bill_could_not_take_is_refused(texts: dict[str, str | None], term: int | None,
                                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        checked_settings(texts, term)
