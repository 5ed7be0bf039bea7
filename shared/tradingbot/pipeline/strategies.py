"""The Strategies stage: every strategy's signal on the latest bar, and the alert's strategy
backtested on the same candles (its win rate feeds the validator)."""

from __future__ import annotations

from tradingbot.pipeline.common import stage_candles
from tradingbot.pipeline.contracts import (
    BacktestedStrategy,
    PipelineState,
    Signal,
    StrategiesResult,
    UnknownStrategy,
)
from tradingbot.pipeline.runtime import Runtime


def strategies_stage(rt: Runtime, state: PipelineState) -> StrategiesResult:
    # pandas, pandas-ta and numba load here only: this stage ships as a container image
    from tradingbot.domain.backtest import BacktestConfig, run_strategy
    from tradingbot.domain.indicators import Indicators
    from tradingbot.domain.strategies import REGISTRY, get_strategy

    alert = state.alert
    candles = stage_candles(rt, alert.symbol)
    ind = Indicators(candles)  # one memo for all six signal runs and the backtest below
    signals: dict[str, Signal] = {}
    for name, strat in REGISTRY.items():
        sig = strat.signals(ind)
        signals[name] = "long" if bool(sig.long_entry[-1]) else "short" if bool(sig.short_entry[-1]) else "none"
    summary: BacktestedStrategy | UnknownStrategy = UnknownStrategy(name=alert.strategy)
    if alert.strategy in REGISTRY:
        m = run_strategy(candles, get_strategy(alert.strategy), None, BacktestConfig(), indicators=ind).metrics
        summary = BacktestedStrategy(
            name=alert.strategy, win_rate=m["win_rate"], trades=m["trades"], total_return=m["total_return"],
            sharpe=m["sharpe"], max_drawdown=m["max_drawdown"], bars=len(candles),
        )  # fmt: skip
    return StrategiesResult(signals=signals, alert_strategy=summary, as_of=candles.index[-1].isoformat())
