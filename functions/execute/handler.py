"""Lambda entry point: execute. The code lives in tradingbot.entrypoints.lambdas.execute, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.execute import handler

__all__ = ["handler"]
