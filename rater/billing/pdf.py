"""An invoice's PDF, laid out by fpdf2 from the invoice as the API shows it (Lago's InvoiceObjectExtended), so the
document and the API never disagree. Pure: dicts in, bytes out (the fonts are read from `font_dir`).

Money is formatted by Babel in the currency's minor units as meterline bills them (core.domain.money), dates
in the customer's timezone. A draft says DRAFT across every page.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal
from fpdf import FPDF
from fpdf.fonts import FontFace

from core.domain.money import minor_units
from core.settings import DOCUMENT_FONTS

LOCALE = Locale.parse("en_US")
FONT = "DejaVuSans"
UNIT_PRICE_DECIMALS = 6  # at most: a unit price divided out (volume, package, percentage) repeats for ever
FOOTER_LINE_MM = 4
GREY = (110, 110, 110)
COLUMNS = (88, 24, 34, 34)  # the fees table's: item, units, unit price, amount (relative widths)


class FontsMissing(RuntimeError):
    """The TrueType fonts documents are written in are not installed (Debian: fonts-dejavu-core)."""


def money(amount: Decimal, currency: str, *, exact: bool = False) -> str:
    """An amount in currency units, with the currency's symbol and its minor units (`exact`: more decimals
    when the amount has them, as a unit price may, up to UNIT_PRICE_DECIMALS)."""
    digits = minor_units(currency)
    if exact:
        amount = amount.quantize(Decimal(1).scaleb(-max(digits, UNIT_PRICE_DECIMALS)), ROUND_HALF_UP)
    exponent = amount.normalize().as_tuple().exponent
    given = -exponent if isinstance(exponent, int) else 0
    pattern = copy.copy(LOCALE.currency_formats["standard"])
    pattern.frac_prec = (digits, max(digits, given) if exact else digits)
    return pattern.apply(amount, LOCALE, currency=currency, currency_digits=False)


def cents(amount_cents: int | Decimal, currency: str) -> str:
    """An amount in the currency's minor unit, formatted as `money`."""
    return money(Decimal(amount_cents).scaleb(-minor_units(currency)), currency)


def quantity(text: str) -> str:
    return format_decimal(Decimal(text), locale=LOCALE, decimal_quantization=False)


def day(value: date) -> str:
    return format_date(value, format="medium", locale=LOCALE)


def _local_day(moment: str | None, timezone: str) -> date | None:
    if not moment:
        return None
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(ZoneInfo(timezone)).date()


def period_text(fee: Mapping[str, Any], timezone: str) -> str:
    start, end = _local_day(fee.get("from_date"), timezone), _local_day(fee.get("to_date"), timezone)
    if start is None or end is None:
        return ""
    return day(start) if start == end else f"{day(start)} – {day(end)}"


def party_lines(party: Mapping[str, Any]) -> list[str]:
    """Who an invoice is from or to: legal name (else name), address, email and tax id, the ones given."""
    city = " ".join(str(party[key]) for key in ("zipcode", "city") if party.get(key))
    region = ", ".join(str(party[key]) for key in ("state", "country") if party.get(key))
    lines = [party.get("legal_name") or party.get("name") or party.get("external_id") or "",
             party.get("address_line1"), party.get("address_line2"), city, region, party.get("email")]
    if party.get("tax_identification_number"):
        lines.append(f"Tax ID: {party['tax_identification_number']}")
    return [str(line) for line in lines if line]


@dataclass(frozen=True)
class Line:
    """One row of the fees table; `detail` rows (a graduated charge's tiers) are set smaller, under their fee."""

    description: str
    units: str
    unit_price: str
    amount: str
    detail: bool = False


def fee_lines(fee: Mapping[str, Any], currency: str, timezone: str) -> Iterator[Line]:
    """A fee's row (its name and period, units, unit price, amount), then a graduated charge's tiers."""
    item = fee["item"]
    name = item.get("invoice_display_name") or item["name"]
    if fee.get("lago_true_up_parent_fee_id"):
        name = f"{name} — minimum commitment true-up"
    period = period_text(fee, timezone)
    tiers = (fee.get("amount_details") or {}).get("graduated_ranges") or []
    unit_price = "" if tiers else money(Decimal(fee["precise_unit_amount"]), currency, exact=True)
    yield Line(f"{name}\n{period}" if period else name, quantity(fee["units"]), unit_price,
               cents(fee["amount_cents"], currency))
    for tier in tiers:
        upper = "and above" if tier["to_value"] is None else f"to {quantity(str(tier['to_value']))}"
        flat = Decimal(tier["flat_unit_amount"])
        price = money(Decimal(tier["per_unit_amount"]), currency, exact=True)
        if flat:
            price = f"{price} + {money(flat, currency, exact=True)} flat"
        yield Line(f"    Units {quantity(str(tier['from_value']))} {upper}", quantity(tier["units"]), price,
                   money(Decimal(tier["total_with_flat_amount"]), currency, exact=True), detail=True)


def total_lines(invoice: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """The totals in the order they are computed: (label, amount, bold), deductions negative."""
    currency = invoice["currency"]
    rows = [("Fees", cents(invoice["fees_amount_cents"], currency), False)]
    if invoice["progressive_billing_credit_amount_cents"]:
        rows.append(("Already billed this period (progressive billing)",
                     cents(-invoice["progressive_billing_credit_amount_cents"], currency), False))
    for credit in invoice.get("credits", []):
        rows.append((f"Coupon {credit['item']['name']} ({credit['item']['code']})",
                     cents(-credit["amount_cents"], currency), False))
    rows.append(("Sub total excluding taxes", cents(invoice["sub_total_excluding_taxes_amount_cents"], currency),
                 True))
    for tax in invoice.get("applied_taxes", []):  # each rounded on its own; their total is the invoice's
        rate = format_decimal(Decimal(str(tax["tax_rate"])), locale=LOCALE, decimal_quantization=False)
        rows.append((f"{tax['tax_name']} ({rate}% on {cents(tax['fees_amount_cents'], currency)})",
                     cents(tax["amount_cents"], currency), False))
    rows.append(("Taxes", cents(invoice["taxes_amount_cents"], currency), False))
    rows.append(("Sub total including taxes", cents(invoice["sub_total_including_taxes_amount_cents"], currency),
                 True))
    if invoice["credit_notes_amount_cents"]:
        rows.append(("Credit notes", cents(-invoice["credit_notes_amount_cents"], currency), False))
    rows.append(("Total", cents(invoice["total_amount_cents"], currency), True))
    return rows


def _line_count(document: FPDF, width: float, height: float, text: str) -> int:
    """How many lines `text` takes in a cell `width` wide, in the current font (nothing is drawn)."""
    lines = document.multi_cell(width, height, text, dry_run=True, output="LINES")
    assert isinstance(lines, list)
    return len(lines)


class _Document(FPDF):
    def __init__(self, draft: bool, footer_text: str | None):
        super().__init__(format="A4")
        self.draft, self.footer_text = draft, footer_text
        self.footer_lines = 1  # "Page n of N", and the footer's own lines once the fonts are in (`measure_footer`)

    def measure_footer(self) -> None:
        """How many lines the footer takes, so that it starts high enough and the body breaks above it."""
        if self.footer_text:
            self.set_font(FONT, "", 8)
            self.footer_lines += _line_count(self, 0, FOOTER_LINE_MM, self.footer_text)
        self.set_auto_page_break(True, margin=12 + self.footer_lines * FOOTER_LINE_MM)

    def header(self) -> None:
        if self.draft:  # across the page, under what follows
            with self.local_context(text_color=(225, 225, 225)), self.rotation(35, self.w / 2, self.h / 2):
                self.set_font(FONT, "B", 110)
                self.text(self.w / 2 - 75, self.h / 2 + 15, "DRAFT")
            self.set_font(FONT, "", 10)

    def footer(self) -> None:
        self.set_y(-(8 + self.footer_lines * FOOTER_LINE_MM))
        self.set_font(FONT, "", 8)
        with self.local_context(text_color=GREY):
            if self.footer_text:
                self.multi_cell(0, FOOTER_LINE_MM, self.footer_text, align="C", new_x="LMARGIN", new_y="NEXT")
            self.cell(0, FOOTER_LINE_MM, f"Page {self.page_no()} of {{nb}}", align="C")


def render_invoice(invoice: Mapping[str, Any], organization: Mapping[str, Any], font_dir: Path) -> bytes:
    """The PDF of `invoice` (as the API shows it), from `organization` (its name and document details)."""
    missing = [name for name in DOCUMENT_FONTS.values() if not (font_dir / name).is_file()]
    if missing:
        raise FontsMissing(f"{', '.join(missing)} not found in {font_dir} (apt-get install fonts-dejavu-core)")
    draft = invoice["status"] == "draft"
    document = _Document(draft, organization.get("invoice_footer"))
    for style, name in DOCUMENT_FONTS.items():
        document.add_font(FONT, style, str(font_dir / name))
    created = datetime.fromisoformat(invoice["created_at"].replace("Z", "+00:00"))
    document.set_creation_date(created)
    document.set_title(f"Invoice {invoice['number']}")
    document.set_author(str(organization.get("legal_name") or organization["name"]))
    document.add_page()
    document.measure_footer()  # on the first page (a cell is measured on one), before anything breaks a page
    _heading(document, invoice, draft)
    _parties(document, organization, invoice["customer"])
    _fees(document, invoice)
    _totals(document, total_lines(invoice))
    return bytes(document.output())


def _heading(document: FPDF, invoice: Mapping[str, Any], draft: bool) -> None:
    document.set_font(FONT, "B", 20)
    document.cell(0, 10, "Invoice (draft)" if draft else "Invoice", new_x="LMARGIN", new_y="NEXT")
    document.set_font(FONT, "", 10)
    # nothing that changes after it is drawn (its payment status, a voiding): the API says those
    facts = [("Invoice number", invoice["number"]),
             ("Issuing date", day(date.fromisoformat(invoice["issuing_date"]))),
             ("Payment due date", day(date.fromisoformat(invoice["payment_due_date"])))]
    for label, value in facts:
        with document.local_context(text_color=GREY):
            document.cell(40, 5.5, label)
        document.cell(0, 5.5, value, new_x="LMARGIN", new_y="NEXT")
    document.ln(4)


def _parties(document: FPDF, organization: Mapping[str, Any], customer: Mapping[str, Any]) -> None:
    top, half = document.get_y(), (document.w - document.l_margin - document.r_margin) / 2
    bottoms = []
    for column, (label, lines) in enumerate((("From", party_lines(organization)),
                                             ("Bill to", party_lines(customer)))):
        document.set_xy(document.l_margin + column * half, top)
        document.set_font(FONT, "B", 10)
        document.cell(half, 5.5, label, new_x="LEFT", new_y="NEXT")
        document.set_font(FONT, "", 10)
        document.multi_cell(half - 4, 5, "\n".join(lines), new_x="LEFT", new_y="NEXT")
        bottoms.append(document.get_y())
    document.set_xy(document.l_margin, max(bottoms) + 6)


def _fees(document: FPDF, invoice: Mapping[str, Any]) -> None:
    currency = invoice["currency"]
    timezone = invoice["customer"].get("applicable_timezone") or "UTC"
    detail = FontFace(size_pt=8, color=GREY)
    document.set_font(FONT, "", 9)
    with document.table(col_widths=COLUMNS, text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
                        borders_layout="HORIZONTAL_LINES", line_height=5, v_align="TOP",
                        headings_style=FontFace(emphasis="BOLD")) as table:
        table.row(("Item", "Units", "Unit price", "Amount"))
        for fee in invoice["fees"]:
            for line in fee_lines(fee, currency, timezone):
                table.row((line.description, line.units, line.unit_price, line.amount),
                          style=detail if line.detail else None)
    document.ln(4)


def _totals(document: FPDF, rows: Sequence[tuple[str, str, bool]]) -> None:
    """Under the fees table's last three columns, the amounts under its amounts."""
    unit = document.epw / sum(COLUMNS)
    amount_width, label_width = COLUMNS[3] * unit, (COLUMNS[1] + COLUMNS[2]) * unit + 30
    left = document.l_margin + document.epw - amount_width - label_width
    heights = []
    for label, _, bold in rows:  # a long name wraps
        document.set_font(FONT, "B" if bold else "", 10)
        heights.append(6 * _line_count(document, label_width, 6, label))
    if document.get_y() + sum(heights) > document.page_break_trigger:
        document.add_page()  # the totals stay together
    for (label, amount, bold), height in zip(rows, heights, strict=True):
        document.set_font(FONT, "B" if bold else "", 10)
        top = document.get_y()
        document.set_x(left)
        document.multi_cell(label_width, 6, label, new_x="RIGHT", new_y="TOP")
        document.cell(amount_width, 6, amount, align="R")
        document.set_xy(document.l_margin, top + height)
