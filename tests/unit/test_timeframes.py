"""The alert's market: TradingView intervals -> venue timeframes, tickers -> ccxt symbols, the
price sanity rule, and the one cost default."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import ccxt
import pytest

from tradingbot.domain.alert import AlertContent, idempotency_key, parse_alert
from tradingbot.domain.costs import SLIPPAGE_BPS, TAKER_FEE_RATE
from tradingbot.domain.timeframes import (
    VENUE_TIMEFRAMES,
    MarketSymbolError,
    TimeframeError,
    check_venue_timeframe,
    next_open_ms,
    timeframe_for_interval,
    unified_symbol,
)
from tradingbot.domain.validation import ValidationConfig, ValidationInput, rule_price_deviation

ALERT = {"strategy": "bollinger", "symbol": "BTCUSDT", "action": "long", "price": 100.0,
         "time": "2026-12-01T10:00:00Z"}  # fmt: skip


def test_our_venue_timeframes_are_ccxts() -> None:
    assert VENUE_TIMEFRAMES["okx"] == set(ccxt.okx().timeframes)
    # ccxt's binance list carries '1s', which it marks "spot only": USD-M klines have none
    assert set(ccxt.binanceusdm().timeframes) - VENUE_TIMEFRAMES["binanceusdm"] == {"1s"}
    assert VENUE_TIMEFRAMES["binanceusdm"] <= set(ccxt.binanceusdm().timeframes)


@pytest.mark.parametrize(
    ("interval", "timeframe"),
    [("1", "1m"), ("3", "3m"), ("5", "5m"), ("15", "15m"), ("30", "30m"), ("60", "1h"), ("120", "2h"),
     ("240", "4h"), ("360", "6h"), ("720", "12h"), ("1440", "1d"), ("1D", "1d"), ("D", "1d"), ("3D", "3d"),
     ("1W", "1w"), ("W", "1w"), ("1M", "1M"), ("3M", "3M"), (" 60 ", "1h")],
)  # fmt: skip
def test_tradingview_intervals_map_to_ccxt_timeframes(interval: str, timeframe: str) -> None:
    assert timeframe_for_interval(interval) == timeframe


@pytest.mark.parametrize("interval", ["45", "180", "1S", "15S", "1T", "2W", "0", "", "1h", "60m", "abc", "99999"])
def test_intervals_no_venue_offers_are_refused(interval: str) -> None:
    with pytest.raises(TimeframeError):
        timeframe_for_interval(interval)


def test_a_venue_refuses_a_timeframe_only_the_other_has() -> None:
    check_venue_timeframe("okx", "3M")
    check_venue_timeframe("binanceusdm", "8h")
    with pytest.raises(TimeframeError, match="binanceusdm has no 3M candles"):
        check_venue_timeframe("binanceusdm", "3M")
    with pytest.raises(TimeframeError, match="okx has no 8h candles"):
        check_venue_timeframe("okx", "8h")


def test_months_step_by_calendar_month() -> None:
    jan = 1704067200000  # 2024-01-01
    feb = next_open_ms(jan, "1M")
    assert feb == 1706745600000 and next_open_ms(feb, "1M") == 1709251200000  # 31 days, then 29 (leap year)
    assert next_open_ms(jan, "1h") == jan + 3_600_000


@pytest.mark.parametrize(("ticker", "symbol"), [("BTCUSDT", "BTC/USDT:USDT"), ("ethusdt.p", "ETH/USDT:USDT"),
                                                ("1000PEPEUSDT", "1000PEPE/USDT:USDT")])  # fmt: skip
def test_tickers_map_to_unified_usdt_perpetuals(ticker: str, symbol: str) -> None:
    assert unified_symbol(ticker) == symbol


@pytest.mark.parametrize("ticker", ["BTCUSD", "USDT", "BTCUSDC.P", "BTC-USDT"])
def test_other_tickers_are_refused(ticker: str) -> None:
    with pytest.raises(MarketSymbolError):
        unified_symbol(ticker)


def test_an_unknown_interval_is_a_422_naming_the_field() -> None:
    raw = json.dumps(ALERT | {"token": "t" * 20, "interval": "45"})
    with pytest.raises(Exception) as info:
        parse_alert(raw, 8192)
    assert getattr(info.value, "status", None) == 422
    assert str(info.value).startswith("interval: Value error, '45' (45m) is not a bar interval")


def test_the_alert_timeframe_defaults_to_one_hour_and_keys_without_interval_are_unchanged() -> None:
    plain = AlertContent.model_validate(ALERT)
    assert plain.timeframe() == "1h" and AlertContent.model_validate(ALERT | {"interval": "240"}).timeframe() == "4h"
    # the key of an alert without interval is what it was before the field existed
    content = json.dumps(
        {k: plain.model_dump(mode="json")[k] for k in ("strategy", "symbol", "action", "price", "time", "quantity",
                                                         "leverage", "stop_loss", "take_profit")},
        separators=(",", ":"),
    )  # fmt: skip
    legacy = "tv-1-" + hashlib.sha256(f"1|{content}".encode()).hexdigest()[:40]
    assert idempotency_key(1, plain) == legacy
    assert idempotency_key(1, AlertContent.model_validate(ALERT | {"interval": "60"})) != legacy


def _input(price: str, live: str | None) -> ValidationInput:
    return ValidationInput(
        direction="long", symbol="BTCUSDT", price=Decimal(price), quantity=None, leverage=1, stop_loss=None,
        take_profit=None, predict={}, ensemble={}, strategy={},
        live_price=None if live is None else Decimal(live), live_price_source="binanceusdm last price",
    )  # fmt: skip


def test_the_price_rule_compares_the_alert_with_the_live_price() -> None:
    cfg = ValidationConfig(symbols={"BTCUSDT"}, max_price_deviation_pct=1.0)
    ok = rule_price_deviation(_input("100.99", "100"), cfg)
    assert (ok.verdict, ok.reason) == ("pass", "alert price 100.99 vs binanceusdm last price 100: 0.99 % <= 1 %")
    far = rule_price_deviation(_input("97", "100"), cfg)
    assert (far.verdict, far.reason) == ("fail", "alert price 97 vs binanceusdm last price 100: 3.00 % > 1 %")
    blind = rule_price_deviation(_input("100", None), cfg)
    assert (blind.verdict, blind.reason) == ("fail", "no live price for BTCUSDT from binanceusdm last price")


def test_one_cost_default_for_backtester_paper_exchange_and_validator() -> None:
    import inspect

    from tradingbot.adapters.exchange.paper import PaperExchange
    from tradingbot.domain.backtest import BacktestConfig
    from tradingbot.settings import PipelineSection

    params = inspect.signature(PaperExchange.__init__).parameters
    assert params["fee_rate"].default == TAKER_FEE_RATE and params["slippage_bps"].default == SLIPPAGE_BPS
    cfg = BacktestConfig()
    assert (Decimal(str(cfg.fee)), Decimal(str(cfg.slippage_bps))) == (TAKER_FEE_RATE, SLIPPAGE_BPS)
    section = PipelineSection()
    assert (section.fee_rate, section.slippage_bps) == (TAKER_FEE_RATE, SLIPPAGE_BPS)
    # the venues' regular-tier taker rate, as ccxt ships it
    assert Decimal(str(ccxt.binanceusdm().fees["linear"]["trading"]["taker"])) == TAKER_FEE_RATE
