"""Payment terms: customers.net_payment_term (null: not set, 0 days), invoices.net_payment_term and payment_due_date

An invoice keeps the term it was issued with, and is due `net_payment_term` days after its issuing
date; existing invoices were issued with none (due on their issuing date).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("net_payment_term", sa.Integer()))
    # a term stored (and shown, unused) among the attributes before: kept when it is a day count
    op.execute("""
        UPDATE customers SET net_payment_term = (attributes->>'net_payment_term')::int,
                             attributes = attributes - 'net_payment_term'
        WHERE attributes->>'net_payment_term' ~ '^[0-9]{1,5}$'
    """)
    op.execute("UPDATE customers SET attributes = attributes - 'net_payment_term' "
               "WHERE attributes ? 'net_payment_term'")
    op.add_column("invoices", sa.Column("net_payment_term", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("invoices", sa.Column("payment_due_date", sa.Date()))
    op.execute("UPDATE invoices SET payment_due_date = issuing_date")
    op.alter_column("invoices", "payment_due_date", nullable=False)


def downgrade() -> None:
    op.drop_column("invoices", "payment_due_date")
    op.drop_column("invoices", "net_payment_term")
    op.drop_column("customers", "net_payment_term")
