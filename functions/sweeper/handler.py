"""Lambda entry point: sweeper. The code lives in tradingbot.entrypoints.lambdas.sweeper, so AWS, the local
runtime (`tradingbot serve` runs the same sweep) and the tests all run the same code."""

from tradingbot.entrypoints.lambdas.sweeper import handler

__all__ = ["handler"]
