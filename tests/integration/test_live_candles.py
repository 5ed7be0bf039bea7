"""Every decision on the live market's candles: the REAL market feed against the local Binance
USD-M stand-in writes into real Redis, then the whole state machine runs (moto's interpreter, the
real handlers, real PostgreSQL). Nothing here reads the packaged candle file through the pipeline."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.store import candles_key
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Decision, Order
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.webhook import receive_alert

from ._live_market import HOUR, LiveMarket, Market, point_runtime_at, series

pytestmark = pytest.mark.timeout(120)


def _iso(ms: float) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def body(token: str, **over: Any) -> bytes:
    alert = {"token": token, "strategy": "bollinger", "symbol": "BTCUSDT", "action": "long", "price": 56588.0,
             "time": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")}  # fmt: skip
    alert.update(over)
    return json.dumps({k: v for k, v in alert.items() if v is not None}).encode()


def run(local: LocalStepFunctions, raw: bytes) -> Decision:
    result = receive_alert(local.runtime, raw, "127.0.0.1")
    assert result.status == 202, result.body
    name = result.body["execution_id"]
    local.wait(local.execution_arn(name))
    with session_scope(local.runtime.engine()) as s:
        decision = s.scalars(select(Decision).where(Decision.execution_name == name)).one()
        s.expunge_all()
    return decision


def orders(rt: Runtime) -> int:
    with session_scope(rt.engine()) as s:
        return s.scalar(select(func.count()).select_from(Order)) or 0


@pytest.fixture
def market_for(runtime: Runtime, servers: Servers) -> Iterator[Any]:
    started: list[LiveMarket] = []

    def start(markets: dict[str, Market], **kw: Any) -> LiveMarket:
        settings = kw.pop("settings", {})
        m = LiveMarket(servers.redis_url, markets, **kw).__enter__()
        started.append(m)
        point_runtime_at(runtime, m, **settings)
        return m

    yield start
    for m in started:
        m.__exit__(None, None, None)


def test_an_eth_alert_is_decided_on_the_eth_candles_and_fills_at_the_eth_price(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any, cache: Cache
) -> None:
    eth, btc = series("ETH"), series("BTC")
    market = market_for({"ETHUSDT": Market(eth), "BTCUSDT": Market(btc)})
    price = market.markets["ETHUSDT"].last_price
    decision = run(local, body(account[1], symbol="ETHUSDT.P", price=round(price, 2)))
    assert decision.final_action == "long", decision.rejection_reason
    info = decision.stages["strategies"]["market"]
    assert info == {"source": "feed", "venue": "binanceusdm", "symbol": "ETH/USDT:USDT", "timeframe": "1h",
                    "as_of": _iso(eth[-2][0]), "as_of_is": "open time of the last closed bar", "bars": 499}  # fmt: skip
    assert decision.stages["strategies"]["as_of"] == _iso(eth[-2][0])
    # the traded configuration was backtested: default stop 2 % / target 4 %, the one fee default
    cfg = decision.stages["strategies"]["alert_strategy"]["config"]
    assert cfg == {"stop_loss": 0.02, "take_profit": 0.04, "leverage": 1.0, "fee": 0.0005, "slippage_bps": 5.0}
    rules = {r["rule"]: r for r in decision.stages["validation"]["rules"]}
    assert rules["price_deviation"]["verdict"] == "pass"
    assert f"binanceusdm last price {Decimal(repr(price))}" in rules["price_deviation"]["reason"]
    # filled at the stand-in's ETH price, moved against the taker by the 5 bps default
    entry = decision.stages["execution"]["orders"][0]
    assert entry["status"] == "filled"
    assert Decimal(entry["average_price"]) == pytest.approx(
        Decimal(repr(price)) * Decimal("1.0005"), abs=Decimal("0.01")
    )
    assert abs(Decimal(entry["average_price"]) - Decimal(repr(btc[-1][4]))) > 10_000  # not BTC's


def test_the_brief_and_the_lstm_use_the_alerts_timeframe_and_symbol(
    runtime: Runtime, account: tuple[int, str], market_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradingbot.adapters.model.predictor import load_default_predictor
    from tradingbot.domain.alert import AlertContent
    from tradingbot.pipeline.predict import predict_alert

    market_for({"ETHUSDT": Market(series("ETH")), "BTCUSDT": Market(series("BTC"))})
    monkeypatch.delenv("MODEL_ARTIFACT_URI")
    load_default_predictor.cache_clear()
    try:
        alert = json.loads(body("x" * 16))
        alert.pop("token")
        btc = predict_alert(runtime, AlertContent.model_validate(alert), account[0]).to_json()
        assert btc["model"] != "unavailable" and btc["market"]["symbol"] == "BTC/USDT:USDT"
        eth = predict_alert(runtime, AlertContent.model_validate(alert | {"symbol": "ETHUSDT"}), account[0])
        assert eth.to_json() == {
            "model": "unavailable",
            "reason": "lstm-btcusdt-1h:v20261125-101220 was trained on BTCUSDT, not ETHUSDT",
        }
        four_h = predict_alert(runtime, AlertContent.model_validate(alert | {"interval": "240"}), account[0])
        assert (
            four_h.to_json()["reason"] == "lstm-btcusdt-1h:v20261125-101220 was trained on 1h bars, the alert is on 4h"
        )
    finally:
        load_default_predictor.cache_clear()


def test_a_stale_feed_fails_closed_with_the_reason(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any
) -> None:
    old = series("BTC", now_ms=int(time.time() * 1000) - 3 * HOUR)  # the feed is three bars behind
    market_for({"BTCUSDT": Market(old, price=56588.0)})
    decision = run(local, body(account[1]))
    assert decision.final_action == "error"
    assert decision.rejection_reason.startswith("StageError: BTCUSDT (BTC/USDT:USDT) on binanceusdm, 1h: stale candles")
    # the bar the feed still shows as forming should have closed three hours ago: it counts as the last closed one
    assert f"the last closed bar (open {_iso(old[-1][0])})" in decision.rejection_reason
    assert orders(local.runtime) == 0


def test_a_cold_cache_is_backfilled_over_rest_and_stored_in_the_feeds_key(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any, cache: Cache
) -> None:
    eth = series("ETH")
    market = market_for({"ETHUSDT": Market(eth, stream=False), "BTCUSDT": Market(series("BTC"))})
    assert cache.get_candles("binanceusdm", "ETH/USDT:USDT", "1h") is None  # cold: the feed has no ETH
    # the price key is the only thing the pipeline needs from a stream; here it is the mark of ETH
    cache.put_price("binanceusdm", "ETH/USDT:USDT", Decimal(repr(eth[-1][4])))
    decision = run(local, body(account[1], symbol="ETHUSDT", price=round(eth[-1][4], 2)))
    assert decision.final_action == "long", decision.rejection_reason
    info = decision.stages["strategies"]["market"]
    assert info["source"] == "backfill" and info["as_of"] == _iso(eth[-2][0]) and info["bars"] == 499
    stored = json.loads(cache.client.get(candles_key("binanceusdm", "ETH/USDT:USDT", "1h")) or b"[]")
    assert [r[0] for r in stored] == [r[0] for r in eth[-500:]]  # the feed's 500 rows: 499 closed + forming
    eth_requests = [q for q in market.fake.kline_requests if q.get("symbol") == "ETHUSDT"]  # type: ignore[union-attr]
    assert eth_requests and all(int(q["limit"]) <= 1000 and "startTime" in q for q in eth_requests)


def test_an_alert_three_percent_away_from_the_market_is_rejected(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any
) -> None:
    market_for({"BTCUSDT": Market(series("BTC"), price=56588.0)})
    decision = run(local, body(account[1], price=round(56588.0 * 1.03, 1)))
    assert decision.final_action == "rejected"
    assert decision.rejection_reason == (
        "price_deviation: alert price 58285.6 vs binanceusdm last price 56588.0: 3.00 % > 1 %"
    )
    assert orders(local.runtime) == 0


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("45", "interval: Value error, '45' (45m) is not a bar interval Binance USD-M or OKX offers"),
        ("1S", "interval: Value error, '1S': second bars are not traded here"),
        ("2h", "interval: Value error, '2h' is not a TradingView resolution"),
        ("3M", "interval: 3M: binanceusdm has no 3M candles"),  # OKX has 3M; a paper account trades Binance's
    ],
)
def test_an_unknown_or_unsupported_interval_is_a_422_naming_the_field(
    runtime: Runtime, account: tuple[int, str], interval: str, message: str
) -> None:
    result = receive_alert(runtime, body(account[1], interval=interval), "127.0.0.1")
    assert result.status == 422
    assert result.body["message"].startswith(message), result.body


def test_the_interval_picks_the_timeframe_of_the_candles(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any
) -> None:
    btc = series("BTC", interval="4h")
    market_for({"BTCUSDT": Market(btc, price=56588.0)}, interval="4h")
    decision = run(local, body(account[1], interval="240", strategy="macd_stochastic"))
    info = decision.stages["strategies"]["market"]
    assert (info["timeframe"], info["as_of"]) == ("4h", _iso(btc[-2][0]))


def test_a_symbol_the_venue_does_not_list_fails_closed(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any
) -> None:
    market_for({"BTCUSDT": Market(series("BTC"))}, listed=("BTC", "ETH"))
    decision = run(local, body(account[1], symbol="SOLUSDT", price=141.47))
    assert decision.final_action == "error"
    assert decision.rejection_reason == (
        "StageError: SOLUSDT (SOL/USDT:USDT) on binanceusdm, 1h: binanceusdm does not list SOL/USDT:USDT"
    )
    assert orders(local.runtime) == 0


@pytest.mark.parametrize("fault", ["gap", "nan"])
def test_candles_with_a_gap_or_nan_from_the_venue_fail_closed(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any, fault: str
) -> None:
    btc = series("BTC")
    if fault == "gap":
        hole = btc.pop(-50)  # the venue never had that bar: the feed's backfill cannot fill it either
    else:
        btc[-50] = [btc[-50][0], btc[-50][1], btc[-50][2], btc[-50][3], float("nan"), btc[-50][5]]
        hole = btc[-50]
    market_for({"BTCUSDT": Market(btc, price=56588.0)})
    decision = run(local, body(account[1]))
    assert decision.final_action == "error" and orders(local.runtime) == 0
    reason = decision.rejection_reason
    if fault == "gap":
        assert reason.startswith("StageError: BTCUSDT (BTC/USDT:USDT) on binanceusdm, 1h: gap in the candles: 1 bar")
        assert _iso(hole[0] + HOUR)[:-1] in reason
    else:
        assert reason.startswith("StageError: invalid candles: BTCUSDT (BTC/USDT:USDT) on binanceusdm, 1h: row ")
        assert reason.endswith("column close: missing or not a number")


def test_a_backfill_that_times_out_fails_closed(
    local: LocalStepFunctions, account: tuple[int, str], market_for: Any, cache: Cache
) -> None:
    market_for({"BTCUSDT": Market(series("BTC"), stream=False)}, kline_delay_s=3.0,
               settings={"backfill_timeout_s": 0.5})  # fmt: skip
    cache.put_price("binanceusdm", "BTC/USDT:USDT", Decimal("56588.0"))
    decision = run(local, body(account[1]))
    assert decision.final_action == "error" and orders(local.runtime) == 0
    assert decision.rejection_reason.startswith(
        "StageError: BTCUSDT (BTC/USDT:USDT) on binanceusdm, 1h: BTC/USDT:USDT on binanceusdm: REST backfill timed out"
    )
