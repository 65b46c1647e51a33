"""subscriptions ending on time: partial index for the API's once-a-second ending check

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_subscriptions_ending", "subscriptions", ["ending_at"],
                    postgresql_where=sa.text("status = 'active' AND ending_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_subscriptions_ending", table_name="subscriptions")
