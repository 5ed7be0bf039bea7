"""Lambda entry point: strategies. The code lives in tradingbot.entrypoints.lambdas.strategies, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.strategies import handler

__all__ = ["handler"]
