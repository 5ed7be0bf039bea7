"""Engine behaviour that matters on Lambda: timeouts, one engine per URL, safe error messages."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import check_connection, create_db_engine, get_engine, redact, session_scope
from tradingbot.adapters.persistence.errors import DatabaseUnavailable


def test_statement_timeout_is_enforced_by_the_server_and_the_connection_survives(servers: Servers) -> None:
    engine = create_db_engine(servers.database_url, statement_timeout_ms=200)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="statement timeout"), session_scope(engine) as s:
            s.execute(text("SELECT pg_sleep(3)"))
        assert time.monotonic() - started < 2
        with session_scope(engine) as s:  # the same pooled connection keeps working
            assert s.execute(text("SHOW statement_timeout")).scalar() == "200ms"
    finally:
        engine.dispose()


def test_one_engine_per_url(servers: Servers) -> None:
    assert get_engine(servers.database_url) is get_engine(servers.database_url)


def test_unreachable_database_fails_fast_with_redacted_url(closed_port: int) -> None:
    url = f"postgresql://app:s3cr3t-pw@127.0.0.1:{closed_port}/trading"
    engine = create_db_engine(url, connect_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        check_connection(engine)
    assert time.monotonic() - started < 3
    assert f"postgresql+pg8000://app:***@127.0.0.1:{closed_port}/trading" in str(info.value)
    assert "s3cr3t-pw" not in str(info.value)
    with pytest.raises(DatabaseUnavailable, match=r"app:\*\*\*@"), session_scope(engine) as s:
        s.execute(text("SELECT 1"))


def test_redact() -> None:
    assert redact("postgresql://u:p%40ss@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact("not a url") == "<unparseable database URL>"
