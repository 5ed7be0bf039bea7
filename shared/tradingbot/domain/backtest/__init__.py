"""Futures backtester: compiled kernel, metrics, grids and reports."""

from tradingbot.domain.backtest.engine import (
    BacktestConfig,
    BacktestConfigError,
    BacktestResult,
    run_backtest,
    run_grid,
    run_strategy,
)

__all__ = [
    "BacktestConfig",
    "BacktestConfigError",
    "BacktestResult",
    "run_backtest",
    "run_grid",
    "run_strategy",
]
