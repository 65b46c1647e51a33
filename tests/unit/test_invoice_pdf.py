"""What an invoice document writes (rater.billing.pdf): money in the currency's minor units by Babel, a graduated
fee's tiers, the totals in the order they are computed, the parties. Pure."""

from __future__ import annotations

import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.settings import DEFAULT_FONT_DIR
from rater.billing.pdf import FontsMissing, cents, fee_lines, money, party_lines, render_invoice, total_lines


def test_money_has_the_currencys_symbol_and_minor_units() -> None:
    assert [cents(123_456, "USD"), cents(-1_000, "USD"), cents(1_234, "JPY"), cents(1_234, "KWD"),
            cents(5, "EUR")] == ["$1,234.56", "-$10.00", "¥1,234", "KWD1.234", "€0.05"]
    # a unit price keeps the decimals it has, never fewer than the currency's
    assert [money(Decimal("0.012"), "USD", exact=True), money(Decimal("2"), "USD", exact=True),
            money(Decimal("0.012"), "USD")] == ["$0.012", "$2.00", "$0.01"]
    # a price divided out repeats for ever: six decimals at most ($10 a package of 150 units)
    assert money(Decimal(10) / 150, "USD", exact=True) == "$0.066667"
    assert cents(7, "XYZ") == "XYZ0.07"  # a code Babel does not know: two decimals, as meterline bills it


def fee(**more: Any) -> dict[str, Any]:
    return {"item": {"name": "Monthly Tracked Users", "invoice_display_name": "MTUs"}, "units": "30000.0",
            "precise_unit_amount": "0.00783", "amount_cents": 23_500, "from_date": "2026-06-01T00:00:00Z",
            "to_date": "2026-06-30T23:59:59.999Z", "amount_details": {}, "lago_true_up_parent_fee_id": None, **more}


def test_a_graduated_fee_lists_its_tiers_under_it_and_its_period_in_the_customers_timezone() -> None:
    tiers = {"graduated_ranges": [
        {"units": "10000.0", "from_value": 0, "to_value": 10000, "flat_unit_amount": "0.0",
         "per_unit_amount": "0.0", "per_unit_total_amount": "0.0", "total_with_flat_amount": "0.0"},
        {"units": "20000.0", "from_value": 10001, "to_value": None, "flat_unit_amount": "5.0",
         "per_unit_amount": "0.012", "per_unit_total_amount": "240.0", "total_with_flat_amount": "245.0"}]}
    lines = list(fee_lines(fee(amount_details=tiers), "USD", "UTC"))
    assert [(line.description, line.units, line.unit_price, line.amount, line.detail) for line in lines] == [
        ("MTUs\nJun 1, 2026 – Jun 30, 2026", "30,000", "", "$235.00", False),
        ("    Units 0 to 10,000", "10,000", "$0.00", "$0.00", True),
        ("    Units 10,001 and above", "20,000", "$0.012 + $5.00 flat", "$245.00", True)]
    (plain,) = fee_lines(fee(), "USD", "America/Los_Angeles")  # June 1 00:00 UTC is May 31 in Los Angeles
    assert (plain.description, plain.unit_price) == ("MTUs\nMay 31, 2026 – Jun 30, 2026", "$0.00783")


def test_the_totals_come_in_the_order_they_are_computed() -> None:
    invoice = {"currency": "USD", "fees_amount_cents": 35_500, "progressive_billing_credit_amount_cents": 500,
               "credits": [{"amount_cents": 1_000, "item": {"name": "Welcome", "code": "welcome"}}],
               "sub_total_excluding_taxes_amount_cents": 34_000, "taxes_amount_cents": 6_800,
               "applied_taxes": [{"tax_name": "VAT", "tax_rate": 20.0, "fees_amount_cents": 34_000,
                                  "amount_cents": 6_800}],
               "sub_total_including_taxes_amount_cents": 40_800, "credit_notes_amount_cents": 4_000,
               "total_amount_cents": 36_800}
    assert total_lines(invoice) == [
        ("Fees", "$355.00", False), ("Already billed this period (progressive billing)", "-$5.00", False),
        ("Coupon Welcome (welcome)", "-$10.00", False), ("Sub total excluding taxes", "$340.00", True),
        ("VAT (20% on $340.00)", "$68.00", False), ("Taxes", "$68.00", False),
        ("Sub total including taxes", "$408.00", True),
        ("Credit notes", "-$40.00", False), ("Total", "$368.00", True)]


def test_a_party_shows_the_details_it_has() -> None:
    assert party_lines({"name": "Acme", "legal_name": None, "city": "Paris", "zipcode": "75001", "country": "FR",
                        "tax_identification_number": "FR123"}) == ["Acme", "75001 Paris", "FR", "Tax ID: FR123"]
    assert party_lines({"name": None, "external_id": "c-1"}) == ["c-1"]


def test_without_its_fonts_no_document_is_written(tmp_path: Path) -> None:
    with pytest.raises(FontsMissing, match="DejaVuSans.ttf, DejaVuSans-Bold.ttf not found in"):
        render_invoice({"status": "finalized"}, {"name": "org"}, tmp_path)


def invoice_of(fees: list[dict[str, Any]], status: str = "finalized") -> dict[str, Any]:
    return {"payment_status": "pending", "number": "ORG-1-001", "created_at":
               "2026-07-01T00:30:00Z", "issuing_date": "2026-07-01", "payment_due_date": "2026-07-31",
               "currency": "EUR", "customer": {"name": "Acme", "applicable_timezone": "Europe/Paris"},
               "fees": fees, "fees_amount_cents": 23_500, "progressive_billing_credit_amount_cents": 0,
               "credits": [], "sub_total_excluding_taxes_amount_cents": 23_500, "taxes_amount_cents": 0,
               "applied_taxes": [], "sub_total_including_taxes_amount_cents": 23_500, "credit_notes_amount_cents": 0,
               "total_amount_cents": 23_500, "status": status}


def pages_text(content: bytes, tmp_path: Path) -> list[str]:
    """Each page's words, in the order they were written (poppler's pdftotext -raw; `make test` installs it)."""
    (tmp_path / "i.pdf").write_bytes(content)
    text = subprocess.run(["pdftotext", "-raw", str(tmp_path / "i.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [" ".join(page.split()) for page in text.split("\f") if page.strip()]


def test_a_document_is_the_same_bytes_each_time_it_is_drawn(tmp_path: Path) -> None:
    invoice = invoice_of([fee()])
    first = render_invoice(invoice, {"name": "org", "invoice_footer": "Merci"}, DEFAULT_FONT_DIR)
    assert first == render_invoice(invoice, {"name": "org", "invoice_footer": "Merci"}, DEFAULT_FONT_DIR)
    assert first.startswith(b"%PDF-")
    (page,) = pages_text(first, tmp_path)
    assert "Total €235.00" in page and "Merci" in page


def test_a_long_invoice_runs_over_pages_each_with_its_heading_mark_and_footer(tmp_path: Path) -> None:
    footer = "\n".join(f"Footer line {n}: bank details and legal mentions of the issuer." for n in range(1, 9))
    content = render_invoice(invoice_of([fee(item={"name": f"Metric {n}", "invoice_display_name": None})
                                         for n in range(1, 61)], status="draft"),
                             {"name": "org", "invoice_footer": footer}, DEFAULT_FONT_DIR)
    pages = pages_text(content, tmp_path)
    assert len(pages) >= 3
    for number, page in enumerate(pages, 1):
        assert page.split()[0] == "DRAFT", number  # across every page, drawn first
        assert f"Page {number} of {len(pages)}" in page and "Footer line 8:" in page
        if number > 1:
            assert "Item Units Unit price Amount" in page  # the table's heading again
    assert all(f"Metric {n} " in " ".join(pages) for n in range(1, 61))
    # the totals are kept together, after the last fee
    assert "Metric 60" in pages[-1] or "Fees €235.00" not in pages[-2]
    assert "Sub total excluding taxes €235.00" in pages[-1] and "Total €235.00" in pages[-1]
