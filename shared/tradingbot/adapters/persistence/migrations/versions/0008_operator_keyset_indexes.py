"""issue 17: (account_id, id) indexes for the operator API's keyset pages of orders
and alerts (as ix_decisions_account_id_id serves decisions). A plain CREATE INDEX, inside the
migration's transaction (the deploy step's, docs/migrations.md): it blocks writes to the table for
the build (not measured on a large table); CONCURRENTLY cannot run in that transaction.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_orders_account_id_id", "orders", ["account_id", "id"], unique=False)
    op.create_index("ix_alerts_account_id_id", "alerts", ["account_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alerts_account_id_id", table_name="alerts")
    op.drop_index("ix_orders_account_id_id", table_name="orders")
