"""Lambda entry point: reconcile. The code lives in tradingbot.entrypoints.lambdas.reconcile, so AWS, the
local runtime (`tradingbot serve` runs the same pass on a timer) and the tests all run the same code."""

from tradingbot.entrypoints.lambdas.reconcile import handler

__all__ = ["handler"]
