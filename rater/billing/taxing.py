"""The taxes of an invoice's fees and of the invoice (core.domain.taxes), as rows to write.

What the invoice deducts before taxes is its progressive billing credit, spread over its usage fees in
proportion to their amounts (the usage the earlier progressive invoices billed), what they cannot take over
its other fees (`progressive_shares`), and its coupons (rater.billing.coupons). Each fee is taxed on its
amount less its shares, with the taxes that apply to it (`taxes_of`: charge, plan, customer, organization),
so the taxed amounts add up to the invoice's subtotal. Pure (the tax book is read before).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.db.taxes import TaxBook
from core.domain.charges import units_text
from core.domain.taxes import AppliedTax, FeeTaxes, InvoiceTaxes, Tax, spread


@dataclass(frozen=True)
class Taxed:
    invoice_taxes: InvoiceTaxes
    fee_applied_taxes: list[dict[str, Any]]  # fee_applied_taxes rows
    invoice_applied_taxes: list[dict[str, Any]]  # invoice_applied_taxes rows


def _applied_row(owner: str, owner_id: str, applied: AppliedTax, position: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), f"{owner}_id": owner_id, "tax_id": applied.tax.id, "tax_code": applied.tax.code,
            "tax_name": applied.tax.name, "tax_rate": applied.tax.rate, "tax_description": applied.tax.description,
            "amount_cents": applied.amount_cents, "precise_amount_cents": units_text(applied.precise_amount_cents),
            "fees_amount_cents": applied.fees_amount_cents, "position": position}


def fee_taxes_of(book: TaxBook, plan_of: dict[str, str], customer_id: str, organization_id: str,
                 row: dict[str, Any]) -> tuple[Tax, ...]:
    """The taxes of a fee row of an invoice (its subscription's plan in `plan_of`)."""
    return book.for_fee(row["charge_id"] if row["fee_type"] == "charge" else None, plan_of[row["subscription_id"]],
                        customer_id, organization_id)


def progressive_shares(fee_rows: Sequence[dict[str, Any]], deduction_cents: int) -> list[Decimal]:
    """Each fee's share of the progressive billing credit: the usage fees', then what they cannot take."""
    shares = spread(deduction_cents, [row["amount_cents"] if row["fee_type"] == "charge" else 0 for row in fee_rows])
    left = deduction_cents - sum(shares)
    if left >= 1:  # more than the usage fees (usage that went down since): the rest from the other fees
        rest = spread(int(left), [row["amount_cents"] if row["fee_type"] != "charge" else 0 for row in fee_rows])
        shares = [share + more for share, more in zip(shares, rest, strict=True)]
    return shares


def tax_fees(invoice_id: str, fee_rows: Sequence[dict[str, Any]], shares: Sequence[Decimal],
             taxes_of: Callable[[dict[str, Any]], Sequence[Tax]]) -> Taxed:
    """Set each fee row's taxes and its share of what the invoice deducts before taxes (`shares`: progressive
    credit and coupons) in place; the invoice's taxes and the rows of both."""
    bases: list[tuple[Decimal, Sequence[Tax]]] = []
    fee_applied: list[dict[str, Any]] = []
    for row, share in zip(fee_rows, shares, strict=True):
        base = Decimal(row["amount_cents"]) - share
        taxes = taxes_of(row)
        fee_taxes = FeeTaxes.of(base, taxes)
        row.update(taxes_amount_cents=fee_taxes.amount_cents, taxes_rate=fee_taxes.rate,
                   taxes_precise_amount_cents=units_text(fee_taxes.precise_amount_cents),
                   precise_coupons_amount_cents=units_text(share))
        fee_applied += [_applied_row("fee", row["id"], applied, n) for n, applied in enumerate(fee_taxes.applied)]
        bases.append((base, taxes))
    invoice_taxes = InvoiceTaxes.of(bases)
    return Taxed(invoice_taxes, fee_applied,
                 [_applied_row("invoice", invoice_id, applied, n) for n, applied in enumerate(invoice_taxes.applied)])
