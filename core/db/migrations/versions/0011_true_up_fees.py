"""True-up fees: fees.true_up_parent_fee_id, set on the fee that brings a charge up to its min_amount_cents

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fees", sa.Column("true_up_parent_fee_id", UUID(as_uuid=False)))


def downgrade() -> None:
    op.drop_column("fees", "true_up_parent_fee_id")
