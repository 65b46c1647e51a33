"""An organization's own details, printed on its invoices (legal name, address, tax id, footer), and its
default `net_payment_term`: an invoice's due date is its issuing date plus the customer's term, else the
organization's.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TEXTS = (("legal_name", 255), ("email", 255), ("address_line1", 255), ("address_line2", 255), ("city", 255),
         ("zipcode", 255), ("state", 255), ("country", 2), ("tax_identification_number", 255),
         ("invoice_footer", 600))


def upgrade() -> None:
    for name, length in TEXTS:
        op.add_column("organizations", sa.Column(name, sa.String(length)))
    op.add_column("organizations", sa.Column("net_payment_term", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("organizations", "net_payment_term")
    for name, _ in reversed(TEXTS):
        op.drop_column("organizations", name)
