"""`tradingbot executions list|show`, `replay` and `kill-switch` against real PostgreSQL and Redis."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.integration.test_pipeline import alert_body, run_alert
from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import create_db_engine
from tradingbot.entrypoints.cli import app
from tradingbot.entrypoints.local.runner import LocalStepFunctions

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    monkeypatch.setenv("REDIS_URL", servers.redis_url)


def test_executions_list_and_show(local: LocalStepFunctions, account: tuple[int, str], live_btc: object) -> None:
    _, decision = run_alert(local, alert_body(account[1], strategy="macd_stochastic"))
    assert decision is not None
    from tradingbot.entrypoints.local.runner import store_trace

    arn = local.execution_arn(decision.execution_name)
    desc = local.sfn.describe_execution(executionArn=arn)
    store_trace(local.runtime, decision.execution_name, desc, local.trace(arn))
    listed = runner.invoke(app, ["executions", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert decision.execution_name in listed.output and "rejected" in listed.output
    shown = runner.invoke(app, ["executions", "show", str(decision.id), "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["final_action"] == "rejected"
    states = [s["state"] for s in record["stages"]["_execution"]["states"]]
    assert "Validate" in states and "RecordRejection" in states
    missing = runner.invoke(app, ["executions", "show", "nope"])
    assert missing.exit_code == 2 and "no execution 'nope'" in missing.output


def test_kill_switch_engage_status_release(account: tuple[int, str]) -> None:
    engaged = runner.invoke(app, ["kill-switch", "engage", "--account", "test", "--reason", "maintenance"])
    assert engaged.exit_code == 0 and "ENGAGED: maintenance" in engaged.output
    status = runner.invoke(app, ["kill-switch", "status", "--account", "test"])
    assert "ENGAGED: maintenance" in status.output
    released = runner.invoke(app, ["kill-switch", "release", "--account", "test"])
    assert released.exit_code == 0 and "released" in released.output
    bad = runner.invoke(app, ["kill-switch", "explode"])
    assert bad.exit_code == 2


def test_kill_switch_survives_an_emptied_redis(account: tuple[int, str], cache: Cache, servers: Servers) -> None:
    """Redis keeps nothing across a restart: the switch engaged by the CLI is kept in PostgreSQL
    (``kill_switches``), still reported engaged with Redis emptied, and written back to Redis."""
    engaged = runner.invoke(app, ["kill-switch", "engage", "--account", "test", "--reason", "exchange incident"])
    assert engaged.exit_code == 0, engaged.output
    cache.client.flushdb()  # what a restart of a redis-server without persistence leaves
    assert cache.kill_switch(account[0]) is None
    status = runner.invoke(app, ["kill-switch", "status", "--account", "test"])
    assert "ENGAGED: exchange incident" in status.output, status.output
    assert cache.kill_switch(account[0]) == "exchange incident"  # re-seeded from PostgreSQL
    released = runner.invoke(app, ["kill-switch", "release", "--account", "test"])
    assert "released" in released.output
    cache.client.flushdb()
    assert "released" in runner.invoke(app, ["kill-switch", "status", "--account", "test"]).output
    engine = create_db_engine(servers.database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM kill_switches")).scalar_one() == 0
    finally:
        engine.dispose()
