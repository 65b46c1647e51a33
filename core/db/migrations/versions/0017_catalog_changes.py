"""Catalog changes announced: every committed change to what the workers' subscription catalog holds sends a
notification on `meterline_catalog` (LISTEN/NOTIFY, delivered at commit; one per transaction however many rows
it changed), so the aggregator and the alerts worker keep their cached views until something changed instead
of reading them again twice a second (aggregator/catalog.py). Row-level triggers: a statement that changes no
row (the activation loop's, every second) announces nothing. `closed_periods` is left out on purpose: the
biller closes one per invoice, and the archive decides closed periods itself (aggregator/archive.py).

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("organizations", "customers", "billable_metrics", "plans", "charges", "usage_thresholds", "subscriptions",
          "alerts")


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION meterline_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('meterline_catalog', '');
            RETURN NULL;
        END $$""")
    for table in TABLES:
        op.execute(f"CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION meterline_catalog_changed()")
        op.execute(f"CREATE TRIGGER catalog_truncated AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION meterline_catalog_changed()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER catalog_truncated ON {table}")
        op.execute(f"DROP TRIGGER catalog_changed ON {table}")
    op.execute("DROP FUNCTION meterline_catalog_changed()")
