"""Lambda entry point: backtest. The code lives in tradingbot.entrypoints.lambdas.backtest, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.backtest import handler

__all__ = ["handler"]
