"""optimisation

issue 18: optimisation runs, folds, candidates, live parameters and promotions

``optimization_runs`` gains what a run searched and its walk-forward summary; its folds and every
backtested candidate get their own tables; ``parameter_promotions`` stores every promotion
decision (refusals too) with its evidence, and ``live_parameters`` the parameters in force per
account, strategy, symbol and timeframe.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUN_COLUMNS = (
    sa.Column("exchange", sa.String(length=32), nullable=True),
    sa.Column("method", sa.String(length=16), nullable=True),
    sa.Column("walk_forward", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column("data_label", sa.Text(), nullable=True),
    sa.Column("bars", sa.Integer(), nullable=True),
    sa.Column("evaluations", sa.Integer(), nullable=True),
    sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
)


def upgrade() -> None:
    for column in _RUN_COLUMNS:
        op.add_column("optimization_runs", column)
    jsonb = postgresql.JSONB(astext_type=sa.Text())
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "optimisation_folds",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("fold", sa.Integer(), nullable=False),
        sa.Column("in_sample_start", ts, nullable=False),
        sa.Column("in_sample_end", ts, nullable=False),
        sa.Column("out_of_sample_start", ts, nullable=False),
        sa.Column("out_of_sample_end", ts, nullable=False),
        sa.Column("params", jsonb, nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("in_sample", jsonb, nullable=True),
        sa.Column("out_of_sample", jsonb, nullable=True),
        sa.Column("baseline_return", sa.Double(), nullable=False),
        sa.Column("buy_hold_return", sa.Double(), nullable=False),
        sa.Column("deflated_sharpe", sa.Double(), nullable=True),
        sa.Column("evaluations", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'no_trades_in_sample', 'no_trades_out_of_sample')",
            name=op.f("ck_optimisation_folds_status"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["optimization_runs.id"],
            name=op.f("fk_optimisation_folds_run_id_optimization_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optimisation_folds")),
        sa.UniqueConstraint("run_id", "fold", name=op.f("uq_optimisation_folds_run_id_fold")),
    )
    op.create_table(
        "optimisation_candidates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("fold", sa.Integer(), nullable=True),
        sa.Column("params", jsonb, nullable=False),
        sa.Column("total_return", sa.Double(), nullable=False),
        sa.Column("max_drawdown", sa.Double(), nullable=False),
        sa.Column("sharpe", sa.Double(), nullable=False),
        sa.Column("win_rate", sa.Double(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["optimization_runs.id"],
            name=op.f("fk_optimisation_candidates_run_id_optimization_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_optimisation_candidates")),
    )
    op.create_index("ix_optimisation_candidates_run_id_fold", "optimisation_candidates", ["run_id", "fold"])
    op.create_table(
        "parameter_promotions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("params", jsonb, nullable=True),
        sa.Column("previous_params", jsonb, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", jsonb, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("action IN ('promote', 'manual', 'rollback')", name=op.f("ck_parameter_promotions_action")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_parameter_promotions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["optimization_runs.id"],
            name=op.f("fk_parameter_promotions_run_id_optimization_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parameter_promotions")),
    )
    op.create_index(
        "ix_parameter_promotions_account_id_strategy",
        "parameter_promotions",
        ["account_id", "strategy", "symbol", "timeframe", "id"],
    )
    op.create_table(
        "live_parameters",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("params", jsonb, nullable=False),
        sa.Column("promotion_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_live_parameters_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["parameter_promotions.id"],
            name=op.f("fk_live_parameters_promotion_id_parameter_promotions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("account_id", "strategy", "symbol", "timeframe", name=op.f("pk_live_parameters")),
    )


def downgrade() -> None:
    op.drop_table("live_parameters")
    op.drop_index("ix_parameter_promotions_account_id_strategy", table_name="parameter_promotions")
    op.drop_table("parameter_promotions")
    op.drop_index("ix_optimisation_candidates_run_id_fold", table_name="optimisation_candidates")
    op.drop_table("optimisation_candidates")
    op.drop_table("optimisation_folds")
    for column in reversed(_RUN_COLUMNS):
        op.drop_column("optimization_runs", column.name)
