"""Alembic migrations, runnable from an installed package (no alembic.ini needed).

``script_location`` is this folder, found through ``__file__``, so ``migrate(url)`` works the same
from a checkout, a wheel and a Lambda layer. Each call runs in one transaction (PostgreSQL has
transactional DDL): a migration that fails half-way leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

from tradingbot.adapters.persistence.db import create_db_engine, normalize_url

HERE = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    # env.py takes the connection from here instead of opening its own from an ini file
    config.attributes["connection"] = connection
    return config


def _engine(url: str) -> Engine:
    # DDL can wait on locks longer than a request may: no statement timeout, a generous socket one.
    return create_db_engine(normalize_url(url), connect_timeout_s=60, statement_timeout_ms=0)


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest)."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at ``url`` to ``revision`` (default: empty)."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
