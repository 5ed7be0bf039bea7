"""`tradingbot executions list|show` tell the truth (issue 17): each state's own result, the final
outcome with its reason, and the execution's status in --json; `tradingbot operators ...`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.entrypoints.cli import app
from tradingbot.pipeline.runtime import Runtime

runner = CliRunner()

ALERT = {"strategy": "bollinger", "action": "long", "symbol": "BTCUSDT", "price": 50000}
VALIDATION: dict[str, Any] = {"action": "reject", "reason": "backtest_win_rate: 40 % <= 55 %",
              "rules": [{"rule": "kill_switch", "verdict": "pass", "reason": "not engaged"},
                        {"rule": "backtest_win_rate", "verdict": "fail", "reason": "40 % <= 55 %"}]}  # fmt: skip


def _trace() -> dict[str, Any]:
    """What the local runner stores (runner.history_to_trace): each state's whole input and output."""
    s0 = {"alert": ALERT, "account_id": 1, "idempotency_key": "k1"}
    s1 = {**s0, "predict": {"model": "unavailable"}}
    s2 = {**s1, "validation": VALIDATION}
    return {"status": "SUCCEEDED", "duration_ms": 812.5, "states": [
        {"state": "Predict", "type": "Task", "input": s0, "output": s1, "duration_ms": 12.0, "started": "t0"},
        {"state": "Validate", "type": "Task", "input": s1, "output": s2, "duration_ms": 7.5, "started": "t1"},
        {"state": "IsTrade", "type": "Choice", "input": s2, "output": s2, "duration_ms": 0.1, "started": "t2"},
    ]}  # fmt: skip


@pytest.fixture(autouse=True)
def env(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    monkeypatch.setenv("REDIS_URL", servers.redis_url)


@pytest.fixture
def decision(runtime: Runtime, account: tuple[int, str]) -> int:
    with session_scope(runtime.engine()) as s:
        d = repo.record_decision(s, execution_name="k1", account_id=account[0], symbol="BTCUSDT",
                                 inputs={"alert": ALERT}, stages={"predict": {"model": "unavailable"},
                                                                  "validation": VALIDATION},
                                 final_action="rejected", rejection_reason=VALIDATION["reason"])  # fmt: skip
        repo.attach_execution_trace(s, "k1", _trace())
        return d.id


def test_show_prints_each_states_own_result_and_json_has_the_status(decision: int) -> None:
    shown = runner.invoke(app, ["executions", "show", str(decision), "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert (record["status"], record["duration_ms"], record["outcome"]) == ("SUCCEEDED", 812.5, "rejected")
    assert record["reason"] == "backtest_win_rate: 40 % <= 55 %"
    own = {s["state"]: s["result"] for s in record["states"]}
    assert own == {"Predict": {"predict": {"model": "unavailable"}}, "Validate": {"validation": VALIDATION},
                   "IsTrade": {}}  # fmt: skip
    table = runner.invoke(app, ["executions", "show", str(decision)], env={"COLUMNS": "220"})
    assert table.exit_code == 0, table.output
    predict_row = next(line for line in table.output.splitlines() if "Predict" in line)
    assert '"predict"' in predict_row and "alert" not in predict_row  # not the whole state again


def test_list_shows_the_outcome_with_the_reason(decision: int) -> None:
    listed = runner.invoke(app, ["executions", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert row["outcome"] == "rejected" and row["reason"] == "backtest_win_rate: 40 % <= 55 %"
    assert row["status"] == "SUCCEEDED" and row["id"] == decision
    table = runner.invoke(app, ["executions", "list"], env={"COLUMNS": "250"})
    assert "backtest_win_rate: 40 % <= 55 %" in table.output


def test_operators_add_list_token(runtime: Runtime, account: tuple[int, str]) -> None:
    added = runner.invoke(app, ["operators", "add", "frank", "--account", "test", "--telegram-chat", "77"])
    assert added.exit_code == 0, added.output
    dup = runner.invoke(app, ["operators", "add", "frank"])
    assert dup.exit_code == 2 and "operator name: 'frank' already exists" in dup.output
    unknown = runner.invoke(app, ["operators", "add", "gina", "--account", "nope"])
    assert unknown.exit_code == 2 and "no account named 'nope'" in unknown.output
    with session_scope(runtime.engine()) as s:  # nothing half-written by the refused add
        assert [o["name"] for o in ops.list_operators(s)] == ["frank"]
    issued = runner.invoke(app, ["operators", "token", "frank", "--ttl-days", "1"])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    assert token.startswith("tbop_")
    with session_scope(runtime.engine()) as s:
        check = ops.operator_by_token(s, token)
        assert check.operator is not None and check.operator.name == "frank"
    listed = runner.invoke(app, ["operators", "list", "--json"])
    [frank] = json.loads(listed.output)
    assert (frank["accounts"], frank["telegram_chats"], frank["live_tokens"]) == (["test"], [77], 1)
    assert token not in listed.output
    revoked = runner.invoke(app, ["operators", "token", "frank", "--revoke"])
    assert revoked.exit_code == 0 and "revoked 1 token(s)" in revoked.output
    with session_scope(runtime.engine()) as s:
        assert ops.operator_by_token(s, token).problem == "revoked"
