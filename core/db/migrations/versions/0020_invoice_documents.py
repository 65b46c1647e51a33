"""Invoice documents: what an organization shows on them (its legal details and footer), the key signing their
links, each fee's graduated breakdown (`amount_details`), and the PDFs themselves (`invoice_documents`).

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

ORGANIZATION_DETAILS = ("legal_name", "email", "address_line1", "address_line2", "city", "zipcode", "state",
                        "country", "tax_identification_number")


def upgrade() -> None:
    for name in ORGANIZATION_DETAILS:
        op.add_column("organizations", sa.Column(name, sa.String(255)))
    op.add_column("organizations", sa.Column("invoice_footer", sa.Text))
    # signs the links to the organization's invoice documents (HMAC-SHA256); gen_random_uuid is a strong random
    op.add_column("organizations", sa.Column(
        "document_key", sa.String(64), nullable=False,
        server_default=sa.text("md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text)")))
    op.add_column("fees", sa.Column("amount_details", JSONB, nullable=False, server_default="{}"))
    op.create_table(
        "invoice_documents",
        sa.Column("invoice_id", UUID(as_uuid=False), sa.ForeignKey("invoices.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("draft", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("invoice_documents")
    op.drop_column("fees", "amount_details")
    for name in (*ORGANIZATION_DETAILS, "invoice_footer", "document_key"):
        op.drop_column("organizations", name)
