"""The business metrics the record_outcome handler emits (issue 17), read back from Powertools'
own EMF document, and the pure helpers of the operator's cockpit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Metrics

from tradingbot.adapters.persistence.repositories.operators import FillRow
from tradingbot.entrypoints.lambdas.business_metrics import metric_name, record, slippage_bps
from tradingbot.pipeline.contracts import RecordRequest
from tradingbot.pipeline.operator_api import decode_cursor, encode_cursor, own_result, replay_fills, ticker

ALERT = {"strategy": "bollinger", "symbol": "BTCUSDT", "action": "long", "price": 50000,
         "time": "2026-12-01T00:00:00Z"}  # fmt: skip


def _emf(metrics: Metrics) -> dict[str, Any]:
    doc: dict[str, Any] = dict(metrics.serialize_metric_set())
    names = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return {n: doc[n] for n in names}


def test_a_rejected_decision_counts_its_rejecting_rule() -> None:
    req = RecordRequest.model_validate({"outcome": "rejected", "execution_name": "e1", "state": {
        "alert": ALERT, "account_id": 1, "idempotency_key": "k1",
        "validation": {"action": "reject", "reason": "r", "rules": [
            {"rule": "kill_switch", "verdict": "pass", "reason": "ok"},
            {"rule": "backtest_win_rate", "verdict": "fail", "reason": "40 %"},
            {"rule": "reward_risk", "verdict": "fail", "reason": "1.0"}],
            "ensemble": {"signal": None, "outcome": "no_voters", "confidence": None, "agreeing": [], "counts": {},
                         "voters_configured": 0},
            "intent": {"direction": "long", "symbol": "BTCUSDT", "price": "50000", "stop_loss": None,
                       "take_profit": None, "quantity": None, "leverage": 1}}}})  # fmt: skip
    metrics = Metrics(namespace="TradingBot", service="tradingbot")
    metrics.clear_metrics()  # Powertools keeps one metric set per process
    added = record(metrics, req)
    assert added == {"DecisionsRejected": 1.0, "RejectedByBacktestWinRate": 1.0}  # the first failing rule only
    assert _emf(metrics) == {"DecisionsRejected": [1.0], "RejectedByBacktestWinRate": [1.0]}


def test_fills_slippage_and_voters() -> None:
    req = RecordRequest.model_validate({"outcome": "traded", "execution_name": "e2", "state": {
        "alert": ALERT, "account_id": 1, "idempotency_key": "k2",
        "ballots": [
            {"kind": "vote", "voter": "openai", "model": "m", "vote": "LONG", "confidence": 0.8, "rationale": "x",
             "latency_ms": 420.0, "cost_usd": 0.002, "configured": True},
            {"kind": "abstention", "voter": "anthropic", "model": "m", "reason": "timeout", "latency_ms": 8000.0,
             "configured": True},
            {"voter": "llama", "configured": False, "reason": "no credentials"}],
        "execution": {"status": "filled", "decision_id": "k2", "account_id": 1, "symbol": "BTC/USDT:USDT",
                      "action": "long", "orders": [
                          {"leg": "open", "client_order_id": "c1", "side": "buy", "type": "market",
                           "quantity": "0.1", "status": "filled", "filled": "0.1", "average_price": "50025"},
                          {"leg": "sl", "client_order_id": "c2", "side": "sell", "type": "stop_market",
                           "quantity": "0.1", "status": "rejected", "reason": "would trigger"}]}}})  # fmt: skip
    metrics = Metrics(namespace="TradingBot", service="tradingbot")
    metrics.clear_metrics()
    added = record(metrics, req)
    assert added["DecisionsTraded"] == 1 and added["OrdersFilled"] == 1 and added["OrdersRejected"] == 1
    assert added["OrdersPlaced"] == 2  # the open leg and the refused stop
    assert added["SlippageBps"] == 5.0  # bought 25 above the alert's 50,000
    assert added["VoterLatencyMs"] == 8420.0 and added["VoterAbstentions"] == 1  # llama had no seat
    assert abs(added["VoterCostUsd"] - 0.002) < 1e-12
    assert _emf(metrics)["VoterLatencyMs"] == [420.0, 8000.0]


def test_helpers() -> None:
    assert metric_name("max_position_notional") == "RejectedByMaxPositionNotional"
    assert slippage_bps("sell", Decimal(100), Decimal("99.9")) == Decimal(10)
    assert ticker("BTC/USDT:USDT") == "BTCUSDT" and ticker("ethusdt") == "ETHUSDT"
    assert decode_cursor(encode_cursor(12345)) == 12345
    assert own_result("Validate", {"a": 1}, {"a": 1, "validation": {"x": 1}}) == {"validation": {"x": 1}}
    assert own_result("Choice", {"a": 1}, {"a": 1}) == {}


def test_fill_replay_realizes_closes_and_flips() -> None:
    import datetime as dt

    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def f(i: int, side: str, qty: str, price: str, fee: str = "0") -> FillRow:
        return FillRow(id=i, order_id=i, client_order_id=str(i), symbol="BTC/USDT:USDT", side=side,
                       price=Decimal(price), quantity=Decimal(qty), fee=Decimal(fee), fee_currency="USDT",
                       filled_at=at)  # fmt: skip

    out = replay_fills([f(1, "buy", "1", "100"), f(2, "buy", "1", "110"),  # average 105
                        f(3, "sell", "3", "120", "0.5"),  # closes 2 (+30), opens a short of 1 at 120
                        f(4, "buy", "1", "100")])  # fmt: skip  # the short gains 20
    assert [r.realized for r in out] == [0, 0, Decimal(30), Decimal(20)]
    assert out[2].fee == Decimal("0.5")
