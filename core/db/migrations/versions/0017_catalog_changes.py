"""Catalog changes announced: every committed change to what the workers' subscription catalog holds sends a
notification on `meterline_catalog` (LISTEN/NOTIFY, delivered at commit), naming what it changed, so the
aggregator and the alerts worker keep their cached views until something of theirs changed instead of reading
them again twice a second (aggregator/catalog.py, core/db/catalog_changes.py).

The payload names the narrowest thing the row belongs to:
- `scope:<organization id>:<external_id>`: a subscription, an alert, a closed period, a subscription's own
  progressive billing threshold (the external_id is the subscription's);
- `organization:<organization id>`: an organization, its customers, billable metrics, plans, their charges
  and thresholds;
- empty: a TRUNCATE.
Row-level triggers: a statement that changes no row (the activation loop's, every second) announces nothing;
the same payload twice in one transaction is sent once. The biller closes periods in transactions of many
invoices, so the notifying transactions (whose commits PostgreSQL serializes) stay few.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("organizations", "customers", "billable_metrics", "plans", "charges", "usage_thresholds", "subscriptions",
          "closed_periods", "alerts")


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION meterline_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            r record;
            subscription_id uuid;
            payload text;
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('meterline_catalog', '');
                RETURN NULL;
            END IF;
            IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
            IF TG_TABLE_NAME = 'subscriptions' THEN
                payload := 'scope:' || r.organization_id || ':' || r.external_id;
            ELSIF TG_TABLE_NAME = 'alerts' THEN
                payload := 'scope:' || r.organization_id || ':' || r.subscription_external_id;
            ELSIF TG_TABLE_NAME = 'closed_periods' THEN
                subscription_id := r.subscription_id;
            ELSIF TG_TABLE_NAME = 'usage_thresholds' THEN
                subscription_id := r.subscription_id;
                payload := 'organization:' || r.organization_id;
            ELSIF TG_TABLE_NAME = 'charges' THEN
                SELECT 'organization:' || p.organization_id INTO payload FROM plans p WHERE p.id = r.plan_id;
            ELSIF TG_TABLE_NAME = 'organizations' THEN
                payload := 'organization:' || r.id;
            ELSE  -- customers, billable_metrics, plans
                payload := 'organization:' || r.organization_id;
            END IF;
            IF subscription_id IS NOT NULL THEN
                SELECT 'scope:' || s.organization_id || ':' || s.external_id INTO payload
                FROM subscriptions s WHERE s.id = subscription_id;
            END IF;
            PERFORM pg_notify('meterline_catalog', coalesce(payload, ''));
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
