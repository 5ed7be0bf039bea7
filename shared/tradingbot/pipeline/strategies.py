"""The Strategies stage: every strategy's signal on the last closed bar of the live candles, and the
alert's strategy backtested on the same candles with the configuration that would be traded (its
win rate feeds the validator)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import optimisation as opt_repo
from tradingbot.pipeline.common import stage_candles
from tradingbot.pipeline.contracts import (
    BacktestedStrategy,
    MarketCandles,
    PipelineState,
    Signal,
    StrategiesResult,
    UnknownStrategy,
)
from tradingbot.pipeline.runtime import Runtime

if TYPE_CHECKING:
    from tradingbot.domain.alert import AlertContent
    from tradingbot.domain.backtest import BacktestConfig
    from tradingbot.domain.strategies import Params
    from tradingbot.settings import PipelineSection


def traded_config(alert: AlertContent, s: PipelineSection) -> BacktestConfig:
    """The backtest of what would be traded: the alert's stop and target (or the defaults) as
    distances from its price, its leverage, and the one fee and slippage default (``TRADING_FEE_RATE``,
    ``TRADING_SLIPPAGE_BPS``, which the paper exchange charges too)."""
    from tradingbot.domain.backtest import BacktestConfig

    price = alert.price
    stop = abs(price - alert.stop_loss) / price if alert.stop_loss else s.default_stop_loss_pct / 100
    target = abs(alert.take_profit - price) / price if alert.take_profit else s.default_take_profit_pct / 100
    return BacktestConfig(
        fee=float(s.fee_rate), slippage_bps=float(s.slippage_bps), leverage=float(alert.leverage or 1),
        stop_loss=float(min(stop, Decimal("0.99"))), take_profit=float(target),
    )  # fmt: skip


def promoted_params(rt: Runtime, account_id: int, symbol: str, timeframe: str) -> dict[str, tuple[Params, str]]:
    """Each strategy's parameters for this account and market: the promoted ones
    (``tradingbot params promote``, or a run's promotion), checked against the strategy's current
    declaration; a strategy without a valid promotion is absent (its defaults apply)."""
    from tradingbot.domain.strategies import REGISTRY, StrategyError

    with session_scope(rt.engine()) as s:
        rows = [(r.strategy, dict(r.params), r.promotion_id)
                for r in opt_repo.list_live_parameters(s, account_id=account_id)
                if r.symbol == symbol and r.timeframe == timeframe]  # fmt: skip
    out: dict[str, tuple[Params, str]] = {}
    for name, params, promotion_id in rows:
        if name not in REGISTRY:
            continue
        try:
            out[name] = (REGISTRY[name].resolve(params), f"promotion #{promotion_id}")
        except StrategyError:  # the declaration changed since: trade the defaults rather than guess
            continue
    return out


def strategies_stage(rt: Runtime, state: PipelineState) -> StrategiesResult:
    # pandas, pandas-ta and numba load here only: this stage ships as a container image
    from tradingbot.domain.backtest import run_strategy
    from tradingbot.domain.indicators import Indicators
    from tradingbot.domain.strategies import REGISTRY, get_strategy

    alert = state.alert
    window = stage_candles(rt, alert, state.account_id)
    candles = window.frame
    live = promoted_params(rt, state.account_id, alert.symbol, alert.timeframe())
    # one memo for all six signal runs and the backtest below, shared with the other executions on
    # the same bars (a burst at bar close decides many alerts on one window)
    ind = Indicators.shared(candles)
    signals: dict[str, Signal] = {}
    for name, strat in REGISTRY.items():
        sig = strat.signals(ind, **live.get(name, ({}, ""))[0])
        signals[name] = "long" if bool(sig.long_entry[-1]) else "short" if bool(sig.short_entry[-1]) else "none"
    summary: BacktestedStrategy | UnknownStrategy = UnknownStrategy(name=alert.strategy)
    if alert.strategy in REGISTRY:
        cfg = traded_config(alert, rt.settings)
        params, source = live.get(alert.strategy, (None, "defaults"))
        result = run_strategy(candles, get_strategy(alert.strategy), params, cfg, indicators=ind)
        m = result.metrics
        summary = BacktestedStrategy(
            name=alert.strategy, win_rate=m["win_rate"], trades=m["trades"], total_return=m["total_return"],
            sharpe=m["sharpe"], max_drawdown=m["max_drawdown"], bars=len(candles),
            config={"stop_loss": cfg.stop_loss, "take_profit": cfg.take_profit, "leverage": cfg.leverage,
                    "fee": cfg.fee, "slippage_bps": cfg.slippage_bps},
            params={k: float(v) for k, v in result.params.items()}, params_source=source,
        )  # fmt: skip
    market = MarketCandles.model_validate(window.describe())
    return StrategiesResult(signals=signals, alert_strategy=summary, as_of=market.as_of, market=market)
