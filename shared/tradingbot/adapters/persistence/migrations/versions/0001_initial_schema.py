"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 09:23:14.828274
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("testnet", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("webhook_token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("token_rotated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "max_position_usd",
            sa.Numeric(precision=38, scale=18),
            server_default=sa.text("1000"),
            nullable=False,
        ),
        sa.Column("max_leverage", sa.Integer(), server_default=sa.text("3"), nullable=False),
        sa.Column(
            "max_daily_loss_usd",
            sa.Numeric(precision=38, scale=18),
            server_default=sa.text("100"),
            nullable=False,
        ),
        sa.Column("max_open_positions", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "risk_per_trade_pct",
            sa.Numeric(precision=38, scale=18),
            server_default=sa.text("1"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("exchange IN ('paper', 'binanceusdm', 'okx')", name=op.f("ck_accounts_exchange")),
        sa.CheckConstraint("max_daily_loss_usd > 0", name=op.f("ck_accounts_max_daily_loss_usd")),
        sa.CheckConstraint("max_leverage BETWEEN 1 AND 125", name=op.f("ck_accounts_max_leverage")),
        sa.CheckConstraint("max_open_positions >= 0", name=op.f("ck_accounts_max_open_positions")),
        sa.CheckConstraint("max_position_usd > 0", name=op.f("ck_accounts_max_position_usd")),
        sa.CheckConstraint(
            "risk_per_trade_pct > 0 AND risk_per_trade_pct <= 100",
            name=op.f("ck_accounts_risk_per_trade_pct"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
        sa.UniqueConstraint("webhook_token_hash", name=op.f("uq_accounts_webhook_token_hash")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )
    op.create_index(
        "uq_model_versions_active_name",
        "model_versions",
        ["name"],
        unique=True,
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "optimization_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("search_space", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("objective", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'running'"), nullable=False),
        sa.Column("best_params", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("best_score", sa.Double(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=op.f("ck_optimization_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optimization_runs")),
    )
    op.create_index(
        "ix_optimization_runs_strategy_started_at",
        "optimization_runs",
        ["strategy", "started_at"],
        unique=False,
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("raw_body", sa.Text(), nullable=False),
        sa.Column("source_ip", postgresql.INET(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'received'"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('received', 'accepted', 'rejected', 'processed', 'failed')",
            name=op.f("ck_alerts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_alerts_account_id_accounts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_alerts_idempotency_key")),
    )
    op.create_index("ix_alerts_account_id_received_at", "alerts", ["account_id", "received_at"], unique=False)
    op.create_index("ix_alerts_status_received_at", "alerts", ["status", "received_at"], unique=False)
    op.create_table(
        "api_credentials",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("kek_id", sa.String(length=32), nullable=False),
        sa.Column("api_key_hint", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_api_credentials_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_credentials")),
        sa.UniqueConstraint("account_id", name=op.f("uq_api_credentials_account_id")),
    )
    op.create_index(op.f("ix_api_credentials_kek_id"), "api_credentials", ["kek_id"], unique=False)
    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("optimization_run_id", sa.BigInteger(), nullable=True),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("data_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'running'"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name=op.f("ck_backtest_runs_status")),
        sa.ForeignKeyConstraint(
            ["optimization_run_id"],
            ["optimization_runs.id"],
            name=op.f("fk_backtest_runs_optimization_run_id_optimization_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_runs")),
    )
    op.create_index(
        op.f("ix_backtest_runs_optimization_run_id"), "backtest_runs", ["optimization_run_id"], unique=False
    )
    op.create_index("ix_backtest_runs_strategy_started_at", "backtest_runs", ["strategy", "started_at"], unique=False)
    op.create_table(
        "positions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("entry_price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("leverage", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("realized_pnl", sa.Numeric(precision=38, scale=18), server_default=sa.text("0"), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("side IN ('long', 'short')", name=op.f("ck_positions_side")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_positions_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
    )
    op.create_index(
        "uq_positions_open_account_symbol",
        "positions",
        ["account_id", "symbol"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("execution_name", sa.String(length=128), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "stages",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("final_action", sa.String(length=16), nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "final_action IN ('long', 'short', 'close', 'hold', 'rejected', 'error')",
            name=op.f("ck_decisions_final_action"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_decisions_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_decisions_alert_id_alerts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("execution_name", name=op.f("uq_decisions_execution_name")),
    )
    op.create_index("ix_decisions_account_id_started_at", "decisions", ["account_id", "started_at"], unique=False)
    op.create_index(op.f("ix_decisions_alert_id"), "decisions", ["alert_id"], unique=False)
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("decision_id", sa.BigInteger(), nullable=True),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("exchange_order_id", sa.String(length=64), nullable=True),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("reduce_only", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=24), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side")),
        sa.CheckConstraint(
            "status IN ('pending', 'submitted', 'open', 'partially_filled', "
            "'filled', 'canceled', 'rejected', 'failed')",
            name=op.f("ck_orders_status"),
        ),
        sa.CheckConstraint(
            "type IN ('market', 'limit', 'stop_market', 'take_profit_market')", name=op.f("ck_orders_type")
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_orders_quantity")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_orders_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_orders_decision_id_decisions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("account_id", "exchange_order_id", name=op.f("uq_orders_account_id_exchange_order_id")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
    )
    op.create_index("ix_orders_account_id_created_at", "orders", ["account_id", "created_at", "id"], unique=False)
    op.create_index(op.f("ix_orders_decision_id"), "orders", ["decision_id"], unique=False)
    op.create_index(
        "ix_orders_open",
        "orders",
        ["account_id", "status"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'submitted', 'open', 'partially_filled')"),
    )
    op.create_table(
        "fills",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("exchange_fill_id", sa.String(length=64), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("fee", sa.Numeric(precision=38, scale=18), server_default=sa.text("0"), nullable=False),
        sa.Column("fee_currency", sa.String(length=16), server_default=sa.text("'USDT'"), nullable=False),
        sa.Column("filled_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_fills_quantity")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_fills_order_id_orders"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("order_id", "exchange_fill_id", name=op.f("uq_fills_order_id_exchange_fill_id")),
    )
    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_events_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    op.create_index("ix_order_events_order_id_at", "order_events", ["order_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_order_events_order_id_at", table_name="order_events")
    op.drop_table("order_events")
    op.drop_table("fills")
    op.drop_index(
        "ix_orders_open",
        table_name="orders",
        postgresql_where=sa.text("status IN ('pending', 'submitted', 'open', 'partially_filled')"),
    )
    op.drop_index(op.f("ix_orders_decision_id"), table_name="orders")
    op.drop_index("ix_orders_account_id_created_at", table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_decisions_alert_id"), table_name="decisions")
    op.drop_index("ix_decisions_account_id_started_at", table_name="decisions")
    op.drop_table("decisions")
    op.drop_index(
        "uq_positions_open_account_symbol",
        table_name="positions",
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.drop_table("positions")
    op.drop_index("ix_backtest_runs_strategy_started_at", table_name="backtest_runs")
    op.drop_index(op.f("ix_backtest_runs_optimization_run_id"), table_name="backtest_runs")
    op.drop_table("backtest_runs")
    op.drop_index(op.f("ix_api_credentials_kek_id"), table_name="api_credentials")
    op.drop_table("api_credentials")
    op.drop_index("ix_alerts_status_received_at", table_name="alerts")
    op.drop_index("ix_alerts_account_id_received_at", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_optimization_runs_strategy_started_at", table_name="optimization_runs")
    op.drop_table("optimization_runs")
    op.drop_index("uq_model_versions_active_name", table_name="model_versions", postgresql_where=sa.text("is_active"))
    op.drop_table("model_versions")
    op.drop_table("accounts")
