"""event lookup by transaction_id: index on event_keys (organization_id, transaction_id)

GET /events/{transaction_id} names an organization and a transaction_id but no subscription, so
the primary key of event_keys (organization, subscription, transaction) cannot serve it without
reading every key of the organization. event_keys is the narrow table (the partitioned `events`
would need the index on every monthly partition); the row is then found through its timestamp.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_event_keys_org_transaction", "event_keys", ["organization_id", "transaction_id"])


def downgrade() -> None:
    op.drop_index("ix_event_keys_org_transaction", table_name="event_keys")
