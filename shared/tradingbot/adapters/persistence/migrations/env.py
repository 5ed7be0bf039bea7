"""Alembic environment: runs on the connection handed over by tradingbot.adapters.persistence.migrations."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tradingbot.adapters.persistence.models import Base


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("call tradingbot.adapters.persistence.migrations.migrate(url); there is no alembic.ini")
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) mode is not supported; migrate against a database")
run_migrations_online()
