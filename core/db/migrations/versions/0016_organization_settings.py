"""An organization's default `net_payment_term`: an invoice's due date is its issuing date plus the
customer's term, else the organization's.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("organizations", sa.Column("net_payment_term", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("organizations", "net_payment_term")
