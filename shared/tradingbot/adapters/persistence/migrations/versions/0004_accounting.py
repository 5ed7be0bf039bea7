"""accounting

issue 15: venue fills with real fees, funding payments, realized PnL per position and day, equity series

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _upgrade_accounting()
    _upgrade_venue_urls()


def downgrade() -> None:
    _downgrade_venue_urls()
    _downgrade_accounting()


# ---- issue 15 part 3 (accounting): the venue's trades with their real fees and realised PnL,
# funding payments, the equity series, the sync cursor; fills.fee NULL = not known yet; the max
# drawdown limit per account.


def _money() -> sa.Numeric:
    return sa.Numeric(38, 18)


def _now() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _upgrade_accounting() -> None:
    op.add_column("accounts", sa.Column("max_drawdown_pct", _money(), server_default=sa.text("20"), nullable=False))
    op.create_check_constraint(
        op.f("ck_accounts_max_drawdown_pct"), "accounts", "max_drawdown_pct > 0 AND max_drawdown_pct <= 100"
    )
    op.alter_column("fills", "fee", existing_type=_money(), nullable=True, existing_server_default=sa.text("0"))
    op.create_table(
        "account_trades",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("venue_trade_id", sa.String(64), nullable=False),
        sa.Column("exchange_order_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("price", _money(), nullable=False),
        sa.Column("quantity", _money(), nullable=False),
        sa.Column("fee", _money(), nullable=False),
        sa.Column("fee_currency", sa.String(16), nullable=False),
        sa.Column("realized_pnl", _money(), nullable=False),
        sa.Column("traded_at", sa.DateTime(timezone=True), nullable=False),
        _now(),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_account_trades_side")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_account_trades_quantity")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_trades_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_trades")),
        sa.UniqueConstraint(
            "account_id", "symbol", "venue_trade_id", name=op.f("uq_account_trades_account_id_symbol_venue_trade_id")
        ),
    )
    op.create_index("ix_account_trades_account_id_traded_at", "account_trades", ["account_id", "traded_at"])
    op.create_index(
        "ix_account_trades_account_id_exchange_order_id", "account_trades", ["account_id", "exchange_order_id"]
    )
    op.create_table(
        "funding_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("amount", _money(), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        _now(),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_funding_payments_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_payments")),
        sa.UniqueConstraint("account_id", "payment_id", name=op.f("uq_funding_payments_account_id_payment_id")),
    )
    op.create_index("ix_funding_payments_account_id_paid_at", "funding_payments", ["account_id", "paid_at"])
    op.create_table(
        "equity_snapshots",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("equity", _money(), nullable=False),
        sa.Column("free", _money(), nullable=False),
        sa.Column("currency", sa.String(16), server_default=sa.text("'USDT'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_equity_snapshots_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_snapshots")),
    )
    op.create_index("ix_equity_snapshots_account_id_at", "equity_snapshots", ["account_id", "at"])
    op.create_table(
        "accounting_cursors",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("synced_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_accounting_cursors_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_accounting_cursors")),
    )


def _downgrade_accounting() -> None:
    op.drop_table("accounting_cursors")
    op.drop_index("ix_equity_snapshots_account_id_at", table_name="equity_snapshots")
    op.drop_table("equity_snapshots")
    op.drop_index("ix_funding_payments_account_id_paid_at", table_name="funding_payments")
    op.drop_table("funding_payments")
    op.drop_index("ix_account_trades_account_id_exchange_order_id", table_name="account_trades")
    op.drop_index("ix_account_trades_account_id_traded_at", table_name="account_trades")
    op.drop_table("account_trades")
    op.execute("UPDATE fills SET fee = 0 WHERE fee IS NULL")
    op.alter_column("fills", "fee", existing_type=_money(), nullable=False, existing_server_default=sa.text("0"))
    op.drop_constraint(op.f("ck_accounts_max_drawdown_pct"), "accounts", type_="check")
    op.drop_column("accounts", "max_drawdown_pct")


# ---- issue 15 parts 4/6/8 (venue endpoints per account): a separate block, kept apart from the
# accounting tables above. accounts.venue_urls = {"rest": url, "ws": url} overrides EXCHANGE_*.


def _upgrade_venue_urls() -> None:
    op.add_column("accounts", sa.Column("venue_urls", postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def _downgrade_venue_urls() -> None:
    op.drop_column("accounts", "venue_urls")
