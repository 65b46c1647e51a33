"""customers.sequential_id and slug, as Lago numbers them: per organization from 1, deleted ones counted

Existing customers are numbered in the order they were created; the slug is the organization's
document prefix (the first three letters of its name and the last four characters of its id,
uppercased) and the number on three digits.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("sequential_id", sa.BigInteger()))
    op.add_column("customers", sa.Column("slug", sa.String(64)))
    op.execute("""
        UPDATE customers c SET sequential_id = numbered.n,
               slug = upper(left(o.name, 3)) || '-' || upper(right(o.id::text, 4)) || '-'
                      || CASE WHEN numbered.n < 1000 THEN lpad(numbered.n::text, 3, '0') ELSE numbered.n::text END
        FROM (SELECT id, row_number() OVER (PARTITION BY organization_id ORDER BY created_at, id) AS n
              FROM customers) numbered, organizations o
        WHERE numbered.id = c.id AND o.id = c.organization_id
    """)
    op.alter_column("customers", "sequential_id", nullable=False)
    op.alter_column("customers", "slug", nullable=False)
    op.create_unique_constraint("uq_customers_org_sequential_id", "customers", ["organization_id", "sequential_id"])


def downgrade() -> None:
    op.drop_constraint("uq_customers_org_sequential_id", "customers")
    op.drop_column("customers", "slug")
    op.drop_column("customers", "sequential_id")
