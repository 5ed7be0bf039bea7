"""Migrations on a real, initially empty PostgreSQL database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from tradingbot.adapters.persistence.db import create_db_engine
from tradingbot.adapters.persistence.migrations import alembic_config, current_revision, downgrade, migrate
from tradingbot.adapters.persistence.models import TABLES, Base

EXPECTED = {t.name for t in TABLES}


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_up_and_down_from_empty(fresh_database_url: str) -> None:
    assert _tables(fresh_database_url) == set()
    assert current_revision(fresh_database_url) is None

    migrate(fresh_database_url)
    assert _tables(fresh_database_url) == EXPECTED
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert current_revision(fresh_database_url) == head

    downgrade(fresh_database_url)
    assert _tables(fresh_database_url) == set()
    assert current_revision(fresh_database_url) is None

    migrate(fresh_database_url)  # and up again: the downgrade really left nothing behind
    assert _tables(fresh_database_url) == EXPECTED


def test_migrate_twice_is_a_no_op(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    migrate(fresh_database_url)
    assert _tables(fresh_database_url) == EXPECTED


def test_models_and_migrations_agree(fresh_database_url: str) -> None:
    """Autogenerate against the migrated schema finds nothing to do: no model change lacks a migration."""
    migrate(fresh_database_url)
    engine = create_db_engine(fresh_database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_expected_indexes_exist(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    engine = create_db_engine(fresh_database_url)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            orders = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("orders")}
            alerts = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("alerts")}
    finally:
        engine.dispose()
    assert orders["ix_orders_account_id_created_at"] == ["account_id", "created_at", "id"]
    assert alerts["ix_alerts_status_received_at"] == ["status", "received_at"]
