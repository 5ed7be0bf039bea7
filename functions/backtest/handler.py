"""Lambda entry point: backtest / optimisation worker (EventBridge schedule or a Map state item)."""

from tradingbot.entrypoints.lambdas.handlers import backtest_handler as handler

__all__ = ["handler"]
