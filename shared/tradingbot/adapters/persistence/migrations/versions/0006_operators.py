"""operators

issue 17: operators, account ownership, Telegram chats, operator audit

``operators`` are the people who steer accounts; ``operator_tokens`` their API bearer tokens (SHA-256
only, with an expiry); ``account_owners`` says which operator owns each account (one owner per
account); ``telegram_chats`` maps an allowed chat to its operator; ``operator_audit`` records every
command, accepted or refused (a Telegram update id once); ``operator_confirmations`` holds a
dangerous command until it is confirmed. ``ix_decisions_account_id_id`` serves the API's
newest-first keyset pages of an account's decisions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column[Any]:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _operator_fk(table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["operator_id"], ["operators.id"], name=op.f(f"fk_{table}_operator_id_operators"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("cognito_sub", sa.String(length=64), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("cognito_sub", name=op.f("uq_operators_cognito_sub")),
        sa.UniqueConstraint("name", name=op.f("uq_operators_name")),
    )
    op.create_table(
        "account_owners",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("operator_id", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_owners_account_id_accounts"), ondelete="CASCADE"
        ),
        _operator_fk("account_owners"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_owners")),
    )
    op.create_index(op.f("ix_account_owners_operator_id"), "account_owners", ["operator_id"], unique=False)
    op.create_table(
        "operator_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("operator_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("command", sa.String(length=64), nullable=False),
        sa.Column(
            "args", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("telegram_update_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("channel IN ('api', 'telegram', 'cli')", name=op.f("ck_operator_audit_channel")),
        sa.CheckConstraint("outcome IN ('ok', 'refused', 'error')", name=op.f("ck_operator_audit_outcome")),
        _operator_fk("operator_audit", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_audit")),
        sa.UniqueConstraint("telegram_update_id", name=op.f("uq_operator_audit_telegram_update_id")),
    )
    op.create_index("ix_operator_audit_operator_id_at", "operator_audit", ["operator_id", "at"], unique=False)
    op.create_table(
        "operator_confirmations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("operator_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("command", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        _operator_fk("operator_confirmations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_confirmations")),
    )
    op.create_index(op.f("ix_operator_confirmations_chat_id"), "operator_confirmations", ["chat_id"], unique=False)
    op.create_table(
        "operator_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("operator_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), server_default=sa.text("''"), nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _operator_fk("operator_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_operator_tokens_token_hash")),
    )
    op.create_index(op.f("ix_operator_tokens_operator_id"), "operator_tokens", ["operator_id"], unique=False)
    op.create_table(
        "telegram_chats",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("operator_id", sa.BigInteger(), nullable=False),
        _created_at(),
        _operator_fk("telegram_chats"),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_telegram_chats")),
    )
    op.create_index(op.f("ix_telegram_chats_operator_id"), "telegram_chats", ["operator_id"], unique=False)
    op.create_index("ix_decisions_account_id_id", "decisions", ["account_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_decisions_account_id_id", table_name="decisions")
    op.drop_index(op.f("ix_telegram_chats_operator_id"), table_name="telegram_chats")
    op.drop_table("telegram_chats")
    op.drop_index(op.f("ix_operator_tokens_operator_id"), table_name="operator_tokens")
    op.drop_table("operator_tokens")
    op.drop_index(op.f("ix_operator_confirmations_chat_id"), table_name="operator_confirmations")
    op.drop_table("operator_confirmations")
    op.drop_index("ix_operator_audit_operator_id_at", table_name="operator_audit")
    op.drop_table("operator_audit")
    op.drop_index(op.f("ix_account_owners_operator_id"), table_name="account_owners")
    op.drop_table("account_owners")
    op.drop_table("operators")
