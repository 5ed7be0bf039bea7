"""The whole state machine, run by moto's Step Functions interpreter with the real handlers,
against real PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from tradingbot.cache import Cache
from tradingbot.persistence.db import session_scope
from tradingbot.persistence.models import Alert, Decision
from tradingbot.pipeline.local import LocalStepFunctions
from tradingbot.pipeline.webhook import receive_alert


def alert_body(token: str, **over: Any) -> bytes:
    body = {"token": token, "strategy": "bollinger", "symbol": "BTCUSDT", "action": "long", "price": 56588.0,
            "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")}  # fmt: skip
    body.update(over)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def run_alert(local: LocalStepFunctions, body: bytes) -> tuple[dict[str, Any], Decision | None]:
    result = receive_alert(local.runtime, body, "127.0.0.1")
    assert result.status == 202, result.body
    name = result.body["execution_id"]
    desc = local.wait(local.execution_arn(name))
    with session_scope(local.runtime.engine()) as s:
        decision = s.scalars(select(Decision).where(Decision.execution_name == name)).one_or_none()
        s.expunge_all()
    return desc, decision


def test_unknown_strategy_is_rejected_with_every_rule_recorded(
    local: LocalStepFunctions, account: tuple[int, str]
) -> None:
    desc, decision = run_alert(local, alert_body(account[1], strategy="my_pine_strategy"))
    assert desc["status"] == "SUCCEEDED"
    assert decision is not None and decision.final_action == "rejected"
    assert decision.rejection_reason.startswith("backtest_win_rate: strategy 'my_pine_strategy' has no backtest")
    rules = {r["rule"]: r["verdict"] for r in decision.stages["validation"]["rules"]}
    assert rules["ai_confidence"] == "skip" and rules["lstm_agrees"] == "skip"
    assert rules["kill_switch"] == "pass" and rules["backtest_win_rate"] == "fail"
    # every voter seat says it is not configured: zero voters, nothing pretends to be a vote
    assert [b["configured"] for b in decision.stages["ballots"]] == [False, False, False]
    assert decision.stages["validation"]["ensemble"]["voters_configured"] == 0
    with session_scope(local.runtime.engine()) as s:
        alert = s.get(Alert, decision.alert_id)
        assert alert is not None and alert.status == "rejected" and alert.reason == decision.rejection_reason


def test_low_win_rate_rejects(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    _, decision = run_alert(local, alert_body(account[1], strategy="macd_stochastic"))
    assert decision is not None and decision.final_action == "rejected"
    assert decision.rejection_reason.startswith("backtest_win_rate: macd_stochastic backtested win rate")


def test_kill_switch_rejects(local: LocalStepFunctions, account: tuple[int, str], cache: Cache) -> None:
    cache.engage_kill_switch("operator test", account_id=account[0])
    _, decision = run_alert(local, alert_body(account[1]))
    assert decision is not None and decision.final_action == "rejected"
    assert "kill switch engaged: operator test" in decision.rejection_reason


def test_leverage_over_the_account_limit_rejects(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    _, decision = run_alert(local, alert_body(account[1], leverage=20))
    assert decision is not None and decision.final_action == "rejected"
    assert "max_leverage: leverage 20x > account limit 3x" in decision.rejection_reason


def test_bad_reward_risk_rejects(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    _, decision = run_alert(local, alert_body(account[1], stop_loss=55000, take_profit=57000))
    assert decision is not None and "reward_risk: reward/risk 0.26 <= 1.5" in decision.rejection_reason


def test_replay_records_a_separate_execution(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    _, first = run_alert(local, alert_body(account[1], strategy="macd_stochastic"))
    assert first is not None
    state = dict(first.inputs) | {"account_id": first.account_id}
    desc = local.run(f"{first.execution_name}-replay-1", state)
    assert desc["status"] == "SUCCEEDED"
    with session_scope(local.runtime.engine()) as s:
        names = s.scalars(select(Decision.execution_name).order_by(Decision.id)).all()
        replayed = s.scalars(select(Decision).where(Decision.execution_name.like("%-replay-1"))).one()
        trace = replayed.stages["_execution"]
    assert names == [first.execution_name, f"{first.execution_name}-replay-1"]
    assert trace["status"] == "SUCCEEDED"
    states = [t["state"] for t in trace["states"]]
    assert states[0] == "Predict" and states[-1] == "Done"
    assert {"Ensemble", "Vote_openai", "Vote_anthropic", "Vote_llama", "Strategies", "Validate"} <= set(states)
    assert all(t.get("duration_ms", 0) >= 0 for t in trace["states"])
