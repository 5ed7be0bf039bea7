"""The whole state machine, run by moto's Step Functions interpreter with the real handlers,
against real PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Alert, Decision, Order
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.webhook import receive_alert

from ._live_market import LiveMarket

# every test here decides on the live market: the real feed against the local Binance stand-in
pytestmark = pytest.mark.usefixtures("live_btc")


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


def test_kill_switch_in_postgresql_rejects_with_redis_emptied(
    local: LocalStepFunctions, account: tuple[int, str], cache: Cache, runtime: Runtime
) -> None:
    """The validator's kill-switch rule reads the durable switch (pipeline/kill_switch.py): engaged in
    PostgreSQL, with Redis emptied (a restart), the alert is still rejected by that rule."""
    from tradingbot.pipeline import kill_switch

    kill_switch.engage(lambda: session_scope(runtime.engine()), cache, reason="durable test", account_id=account[0])
    cache.client.flushdb()
    _, decision = run_alert(local, alert_body(account[1]))
    assert decision is not None and decision.final_action == "rejected"
    assert decision.rejection_reason.startswith("kill_switch: kill switch engaged: durable test"), (
        decision.rejection_reason
    )


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


@pytest.fixture
def priced(live_btc: LiveMarket) -> None:
    """The feed's price key holds the stand-in's last trade (56588.0, the series' last close)."""


def test_trade_path_places_one_paper_order_and_records_everything(
    local: LocalStepFunctions, account: tuple[int, str], priced: None
) -> None:
    desc, decision = run_alert(local, alert_body(account[1]))
    assert desc["status"] == "SUCCEEDED", desc
    assert decision is not None and decision.final_action == "long", decision.rejection_reason
    execution = decision.stages["execution"]
    assert execution["status"] == "filled", execution
    assert decision.stages["notify"]["channel"] == "log"
    with session_scope(local.runtime.engine()) as s:
        orders = s.scalars(select(Order).order_by(Order.id)).all()
        # the entry fills; its stop-loss and take-profit rest on the (paper) book, reduce-only
        assert (orders[0].type, orders[0].status, orders[0].reduce_only) == ("market", "filled", False)
        assert all(o.reduce_only and o.status == "open" for o in orders[1:]) and len(orders) == 3
        assert [o.client_order_id for o in orders] == [o["client_order_id"] for o in execution["orders"]]
        alert = s.get(Alert, decision.alert_id)
        assert alert is not None and alert.status == "processed"


def test_replay_never_places_a_second_order_unless_asked(
    local: LocalStepFunctions, account: tuple[int, str], priced: None
) -> None:
    def market_orders() -> int:
        with session_scope(local.runtime.engine()) as s:
            return s.scalar(select(func.count()).select_from(Order).where(Order.type == "market")) or 0

    _, first = run_alert(local, alert_body(account[1]))
    assert first is not None and first.final_action == "long"
    _, closing = run_alert(local, alert_body(account[1], action="flat"))
    assert closing is not None and closing.final_action == "close"
    assert market_orders() == 2  # the entry and the close
    # flat again, so a blind resend would open a new long: the same client order id prevents it
    state = dict(first.inputs) | {"account_id": first.account_id}
    local.run("replay-a", state)
    assert market_orders() == 2
    local.run("replay-b", state | {"order_nonce": "n1"})  # tradingbot replay --new-order
    assert market_orders() == 3


def test_a_stage_failing_once_is_retried_and_the_execution_succeeds(
    runtime: Runtime, account: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradingbot.entrypoints.lambdas import strategies as strategies_lambda
    from tradingbot.errors import TransientError

    calls = {"n": 0}
    real = strategies_lambda.strategies_stage

    def flaky_strategies(rt: Runtime, state: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientError("candles briefly unavailable")
        return real(rt, state)

    # inside the real handler: the edge reports it as TransientError, which the state machine retries
    monkeypatch.setattr(strategies_lambda, "strategies_stage", flaky_strategies)
    sf = LocalStepFunctions(runtime).start()
    try:
        desc, decision = run_alert(sf, alert_body(account[1], strategy="macd_stochastic"))
    finally:
        sf.stop()
    assert desc["status"] == "SUCCEEDED" and calls["n"] == 2
    assert decision is not None and decision.final_action == "rejected"  # the rules ran on real output


def test_a_permanent_stage_failure_fails_the_execution_with_a_stored_reason(
    runtime: Runtime, account: tuple[int, str]
) -> None:
    from tradingbot.entrypoints.lambdas.registry import HANDLERS
    from tradingbot.pipeline.common import StageError

    def broken(event: dict[str, Any], context: Any) -> Any:
        raise StageError("no candles for BTCUSDT")

    sf = LocalStepFunctions(runtime, handlers=HANDLERS | {"strategies": broken}).start()
    try:
        desc, decision = run_alert(sf, alert_body(account[1]))
    finally:
        sf.stop()
    assert desc["status"] == "FAILED" and desc["error"] == "PipelineFailed"
    assert decision is not None and decision.final_action == "error"
    assert decision.rejection_reason == "StageError: no candles for BTCUSDT"
    with session_scope(runtime.engine()) as s:
        alert = s.get(Alert, decision.alert_id)
        assert alert is not None and alert.status == "failed"


def test_a_failing_voter_branch_abstains_and_the_decision_says_why(runtime: Runtime, account: tuple[int, str]) -> None:
    from tradingbot.entrypoints.lambdas.registry import HANDLERS

    def vote(event: dict[str, Any], context: Any) -> Any:
        if event["voter"] == "anthropic":
            raise RuntimeError("provider SDK crashed")
        return HANDLERS["vote"](event, context)

    sf = LocalStepFunctions(runtime, handlers=HANDLERS | {"vote": vote}).start()
    try:
        desc, decision = run_alert(sf, alert_body(account[1]))
    finally:
        sf.stop()
    assert desc["status"] == "SUCCEEDED"
    assert decision is not None
    ballots = {b["voter"]: b for b in decision.stages["ballots"]}
    assert ballots["anthropic"]["kind"] == "abstention" and ballots["anthropic"]["detail"] == "RuntimeError"
    assert ballots["openai"]["configured"] is False
    ensemble = decision.stages["validation"]["ensemble"]
    assert ensemble["voters_configured"] == 1 and ensemble["outcome"] == "all_abstained"
    assert decision.final_action == "rejected" and decision.rejection_reason.startswith("ai_confidence: no 2-of-3")


def test_many_deliveries_of_one_alert_make_one_execution_and_one_order(
    local: LocalStepFunctions, account: tuple[int, str], priced: None
) -> None:
    import concurrent.futures as cf

    body = alert_body(account[1])
    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: receive_alert(local.runtime, body, "127.0.0.1"), range(40)))
    assert {r.status for r in results} == {202}
    assert len({r.body["execution_id"] for r in results}) == 1
    local.drain(60)
    assert len(local.sfn.list_executions(stateMachineArn=local.state_machine_arn)["executions"]) == 1
    with session_scope(local.runtime.engine()) as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 1
        assert s.scalar(select(func.count()).select_from(Order).where(Order.type == "market")) == 1


def test_the_bundled_lstm_feeds_the_lstm_rule(
    local: LocalStepFunctions, account: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradingbot.adapters.model.predictor import load_default_predictor
    from tradingbot.pipeline.contracts import PipelineState
    from tradingbot.pipeline.predict import predict_stage

    monkeypatch.delenv("MODEL_ARTIFACT_URI")
    load_default_predictor.cache_clear()
    state = {"alert": json.loads(alert_body(account[1])) | {"token": None}, "account_id": account[0],
             "idempotency_key": "tv-lstm-probe"}  # fmt: skip
    state["alert"].pop("token")
    predicted = predict_stage(local.runtime, PipelineState.model_validate(state)).to_json()
    assert predicted["model"] != "unavailable" and predicted["direction"] in ("long", "short")
    opposite = "short" if predicted["direction"] == "long" else "long"
    _, against = run_alert(local, alert_body(account[1], action=opposite))
    assert against is not None and against.stages["predict"]["direction"] == predicted["direction"]
    rules = {r["rule"]: r for r in against.stages["validation"]["rules"]}
    assert rules["lstm_agrees"]["verdict"] == "fail"
    assert rules["lstm_agrees"]["reason"] == f"LSTM predicts {predicted['direction']}, the alert says {opposite}"
    _, agreeing = run_alert(local, alert_body(account[1], action=predicted["direction"], price=56588.5))
    assert agreeing is not None
    assert {r["rule"]: r["verdict"] for r in agreeing.stages["validation"]["rules"]}["lstm_agrees"] == "pass"
    load_default_predictor.cache_clear()
