"""durability

issue 16: re-drive of accepted alerts, local durable executions, ingress

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _upgrade_redrive()
    _upgrade_ingress()
    _upgrade_kill_switch()


def downgrade() -> None:
    _downgrade_kill_switch()
    _downgrade_ingress()
    _downgrade_redrive()


# ---------------------------------------------------------------- re-drive and local executions (runtime half)


def _upgrade_redrive() -> None:
    op.create_table(
        "pipeline_starts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("execution_name", sa.String(length=128), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_pipeline_starts_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_starts")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_pipeline_starts_alert_id")),
        sa.UniqueConstraint("execution_name", name=op.f("uq_pipeline_starts_execution_name")),
    )
    op.create_index(
        "ix_pipeline_starts_started_at_created_at", "pipeline_starts", ["started_at", "created_at"], unique=False
    )
    op.create_table(
        "local_executions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("state_machine", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'QUEUED'"), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("current_state", sa.String(length=128), nullable=True),
        sa.Column("checkpoint", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.String(length=256), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("history", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.CheckConstraint(
            "status IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED')",
            name=op.f("ck_local_executions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_executions")),
        sa.UniqueConstraint("state_machine", "name", name=op.f("uq_local_executions_state_machine_name")),
    )  # fmt: skip
    op.create_index("ix_local_executions_status_created_at", "local_executions", ["status", "created_at"], unique=False)


def _downgrade_redrive() -> None:
    op.drop_index("ix_local_executions_status_created_at", table_name="local_executions")
    op.drop_table("local_executions")
    op.drop_index("ix_pipeline_starts_started_at_created_at", table_name="pipeline_starts")
    op.drop_table("pipeline_starts")


# ---------------------------------------------------------------- ingress: refused attempts, aggregated (part 4)


def _upgrade_ingress() -> None:
    op.create_table(
        "ingress_refusals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ingress_refusals_account_id_accounts"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingress_refusals")),
        sa.UniqueConstraint("minute", "reason", "source", name=op.f("uq_ingress_refusals_minute_reason_source")),
    )
    op.create_index("ix_ingress_refusals_reason_minute", "ingress_refusals", ["reason", "minute"], unique=False)
    op.create_table(
        "ingress_refusal_samples",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("body", sa.String(length=1024), nullable=False),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingress_refusal_samples")),
    )
    op.create_index("ix_ingress_refusal_samples_reason_at", "ingress_refusal_samples", ["reason", "at"], unique=False)


def _downgrade_ingress() -> None:
    op.drop_index("ix_ingress_refusal_samples_reason_at", table_name="ingress_refusal_samples")
    op.drop_table("ingress_refusal_samples")
    op.drop_index("ix_ingress_refusals_reason_minute", table_name="ingress_refusals")
    op.drop_table("ingress_refusals")


# ------------------------------------------------ issue 15 fault matrix: durable kill switch (its own block)


def _upgrade_kill_switch() -> None:
    op.create_table(
        "kill_switches",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("engaged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_kill_switches")),
    )


def _downgrade_kill_switch() -> None:
    op.drop_table("kill_switches")
