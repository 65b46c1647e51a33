"""Catalog changes announced: every committed change to what the workers' subscription catalog holds sends a
notification on `meterline_catalog` (LISTEN/NOTIFY, delivered at commit), naming what it changed, so the
aggregator and the alerts worker keep their cached views until something of theirs changed instead of reading
them again twice a second (aggregator/catalog.py, core/db/catalog_changes.py).

The payload names the narrowest thing the row belongs to:
- `scope:<organization id>:<external_id>`: a subscription, an alert, a closed period, a subscription's own
  progressive billing threshold (the external_id is the subscription's);
- `organization:<organization id>`: a customer's timezone, the organization's billable metrics, plans, their
  charges and thresholds;
- empty: a TRUNCATE, or a row whose parent is gone (a cascaded delete).
An UPDATE announces the row as it was and as it is (the same payload twice in one transaction is sent once).
Row-level triggers: a statement that changes no row (the activation loop's, every second) announces nothing.
Customers announce only a changed timezone (or a delete): nothing else of theirs is in a view, and Lago
clients upsert customers routinely; organizations announce nothing (nothing of theirs is). The biller
closes periods in transactions of many invoices, so the notifying transactions (whose commits PostgreSQL
serializes) stay few.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("billable_metrics", "plans", "charges", "usage_thresholds", "subscriptions", "closed_periods", "alerts")


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION meterline_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            r record;
            round int;
            owner_id uuid;
            payload text;
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('meterline_catalog', '');
                RETURN NULL;
            END IF;
            FOR round IN 1 .. CASE WHEN TG_OP = 'UPDATE' THEN 2 ELSE 1 END LOOP
                IF TG_OP = 'DELETE' OR round = 2 THEN r := OLD; ELSE r := NEW; END IF;
                owner_id := NULL;
                payload := NULL;
                IF TG_TABLE_NAME = 'subscriptions' THEN
                    payload := 'scope:' || r.organization_id || ':' || r.external_id;
                ELSIF TG_TABLE_NAME = 'alerts' THEN
                    payload := 'scope:' || r.organization_id || ':' || r.subscription_external_id;
                ELSIF TG_TABLE_NAME = 'closed_periods' THEN
                    owner_id := r.subscription_id;
                ELSIF TG_TABLE_NAME = 'usage_thresholds' THEN
                    owner_id := r.subscription_id;
                    payload := 'organization:' || r.organization_id;
                ELSIF TG_TABLE_NAME = 'charges' THEN
                    SELECT 'organization:' || p.organization_id INTO payload FROM plans p WHERE p.id = r.plan_id;
                ELSE  -- customers, billable_metrics, plans
                    payload := 'organization:' || r.organization_id;
                END IF;
                IF owner_id IS NOT NULL THEN
                    SELECT 'scope:' || s.organization_id || ':' || s.external_id INTO payload
                    FROM subscriptions s WHERE s.id = owner_id;
                END IF;
                PERFORM pg_notify('meterline_catalog', coalesce(payload, ''));
            END LOOP;
            RETURN NULL;
        END $$""")
    for table in TABLES:
        op.execute(f"CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION meterline_catalog_changed()")
    op.execute("CREATE TRIGGER catalog_changed AFTER UPDATE OF timezone ON customers FOR EACH ROW "
               "WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone) EXECUTE FUNCTION meterline_catalog_changed()")
    op.execute("CREATE TRIGGER catalog_deleted AFTER DELETE ON customers "
               "FOR EACH ROW EXECUTE FUNCTION meterline_catalog_changed()")
    for table in (*TABLES, "customers"):
        op.execute(f"CREATE TRIGGER catalog_truncated AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION meterline_catalog_changed()")


def downgrade() -> None:
    for table in (*TABLES, "customers"):
        op.execute(f"DROP TRIGGER catalog_truncated ON {table}")
        op.execute(f"DROP TRIGGER catalog_changed ON {table}")
    op.execute("DROP TRIGGER catalog_deleted ON customers")
    op.execute("DROP FUNCTION meterline_catalog_changed()")
