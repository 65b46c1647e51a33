"""Usage thresholds removed from a plan or a subscription are kept, marked deleted, while a progressive
crossing names them (its invoice and its webhook show the threshold reached); readers skip them.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_thresholds", sa.Column("deleted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("usage_thresholds", "deleted_at")
