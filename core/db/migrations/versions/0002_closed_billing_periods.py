"""closed billing periods

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:35:38.624385
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('closed_periods',
    sa.Column('subscription_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('period_key', sa.String(length=32), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], ),
    sa.PrimaryKeyConstraint('subscription_id', 'period_key')
    )


def downgrade() -> None:
    op.drop_table('closed_periods')
