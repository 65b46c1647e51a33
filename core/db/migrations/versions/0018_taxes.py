"""Taxes (`/taxes`), the taxes of customers, plans and charges (`tax_codes`), the taxes an invoice and each of
its fees carry (snapshots of the tax as it was: name, code, rate), and a credit note's taxes.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_ID = UUID(as_uuid=False)


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "taxes",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("organization_id", _ID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("rate", sa.Numeric(9, 5), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("applied_to_organization", sa.Boolean, nullable=False, server_default="false"),
        _now("created_at"), _now("updated_at"),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("uq_taxes_org_code", "taxes", ["organization_id", "code"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))
    for owner, table in (("customer", "customers"), ("plan", "plans"), ("charge", "charges")):
        op.create_table(
            f"{owner}_taxes",
            sa.Column(f"{owner}_id", _ID, sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False),
            sa.Column("tax_id", _ID, sa.ForeignKey("taxes.id"), nullable=False),
            sa.PrimaryKeyConstraint(f"{owner}_id", "tax_id"),
        )
        op.create_index(f"ix_{owner}_taxes_tax", f"{owner}_taxes", ["tax_id"])  # a tax deleted: its links
    op.add_column("fees", sa.Column("taxes_amount_cents", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("fees", sa.Column("taxes_precise_amount_cents", sa.String(64), nullable=False, server_default="0"))
    op.add_column("fees", sa.Column("taxes_rate", sa.Numeric(12, 5), nullable=False, server_default="0"))
    # the fee's share of what its invoice deducts before taxes (progressive billing credit), precise cents
    op.add_column("fees", sa.Column("precise_coupons_amount_cents", sa.String(64), nullable=False,
                                    server_default="0"))
    # a credit note credits the unused part of a fee with the fee's taxes on it
    op.add_column("credit_notes", sa.Column("taxes_amount_cents", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("credit_notes", sa.Column("taxes_rate", sa.Numeric(12, 5), nullable=False, server_default="0"))
    op.add_column("invoices", sa.Column("taxes_amount_cents", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("invoices", sa.Column("taxes_rate", sa.Numeric(12, 5), nullable=False, server_default="0"))
    for owner, table in (("fee", "fees"), ("invoice", "invoices")):
        op.create_table(
            f"{owner}_applied_taxes",
            sa.Column("id", _ID, primary_key=True),
            sa.Column(f"{owner}_id", _ID, sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False),
            sa.Column("tax_id", _ID, sa.ForeignKey("taxes.id"), nullable=False),
            sa.Column("tax_code", sa.String(255), nullable=False),
            sa.Column("tax_name", sa.String(255), nullable=False),
            sa.Column("tax_rate", sa.Numeric(9, 5), nullable=False),
            sa.Column("tax_description", sa.Text),
            sa.Column("amount_cents", sa.BigInteger, nullable=False),
            sa.Column("precise_amount_cents", sa.String(64), nullable=False),
            sa.Column("fees_amount_cents", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("position", sa.Integer, nullable=False),
            _now("created_at"),
        )
        op.create_index(f"ix_{owner}_applied_taxes_{owner}", f"{owner}_applied_taxes", [f"{owner}_id"])


def downgrade() -> None:
    for owner in ("fee", "invoice"):
        op.drop_table(f"{owner}_applied_taxes")
    for column in ("taxes_amount_cents", "taxes_rate"):
        op.drop_column("invoices", column)
        op.drop_column("credit_notes", column)
    for column in ("taxes_amount_cents", "taxes_precise_amount_cents", "taxes_rate", "precise_coupons_amount_cents"):
        op.drop_column("fees", column)
    for owner in ("customer", "plan", "charge"):
        op.drop_table(f"{owner}_taxes")
    op.drop_table("taxes")
