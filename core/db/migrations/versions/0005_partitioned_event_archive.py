"""event archive partitioned by month, with its dedup key in event_keys

PostgreSQL enforces a unique key on a partitioned table only when the key contains the partition
key. The archive's dedup key (organization, external_subscription_id, transaction_id) must not
contain the timestamp: the first copy of a transaction wins whatever the timestamp of a later
copy. So the key lives in `event_keys`, a plain table with that primary key (and the timestamp,
to find the row), and the aggregator inserts an event row only for keys that were new, in one
statement (aggregator/archive.py). Partitions are monthly, created by the aggregator on demand.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = ('organization_id, external_subscription_id, transaction_id, lago_id, code, "timestamp", '
            "properties, precise_total_amount_cents, received_at, created_at")

# Creates the monthly partition of `events` holding `moment` (UTC months), if missing.
_PARTITION_FUNCTION = """
CREATE OR REPLACE FUNCTION meterline_events_partition(moment timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  month_start timestamptz := date_trunc('month', moment AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  name text := 'events_p' || to_char(month_start AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                 name, month_start, month_start + interval '1 month');
  RETURN name;
END $$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    op.execute("ALTER INDEX ix_events_org_sub_timestamp RENAME TO ix_events_unpartitioned_org_sub_timestamp")
    op.execute("""
        CREATE TABLE events (
            organization_id uuid NOT NULL,
            external_subscription_id varchar(255) NOT NULL,
            transaction_id varchar(255) NOT NULL,
            lago_id uuid NOT NULL,
            code varchar(255) NOT NULL,
            "timestamp" timestamptz NOT NULL,
            properties jsonb NOT NULL,
            precise_total_amount_cents varchar(64),
            received_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        ) PARTITION BY RANGE ("timestamp")
    """)
    op.execute('CREATE INDEX ix_events_org_sub_timestamp ON events '
               '(organization_id, external_subscription_id, "timestamp")')
    op.execute("""
        CREATE TABLE event_keys (
            organization_id uuid NOT NULL,
            external_subscription_id varchar(255) NOT NULL,
            transaction_id varchar(255) NOT NULL,
            "timestamp" timestamptz NOT NULL,
            PRIMARY KEY (organization_id, external_subscription_id, transaction_id)
        )
    """)
    op.execute(_PARTITION_FUNCTION)
    op.execute("SELECT meterline_events_partition(m) FROM "
               "(SELECT DISTINCT date_trunc('month', \"timestamp\") AS m FROM events_unpartitioned) AS months")
    op.execute(f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM events_unpartitioned")
    op.execute("INSERT INTO event_keys SELECT organization_id, external_subscription_id, transaction_id, "
               '"timestamp" FROM events_unpartitioned')
    op.execute("DROP TABLE events_unpartitioned")


def downgrade() -> None:
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("ALTER INDEX ix_events_org_sub_timestamp RENAME TO ix_events_partitioned_org_sub_timestamp")
    op.execute(f"CREATE TABLE events AS SELECT {_COLUMNS} FROM events_partitioned")
    op.execute("ALTER TABLE events ALTER COLUMN created_at SET DEFAULT now()")
    op.execute("ALTER TABLE events ADD CONSTRAINT uq_events_org_sub_transaction "
               "UNIQUE (organization_id, external_subscription_id, transaction_id)")
    op.execute("CREATE INDEX ix_events_org_sub_timestamp ON events "
               '(organization_id, external_subscription_id, "timestamp")')
    op.execute("DROP TABLE events_partitioned")
    op.execute("DROP TABLE event_keys")
    op.execute("DROP FUNCTION meterline_events_partition(timestamptz)")
