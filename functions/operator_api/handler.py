"""Lambda entry point: operator_api. The code lives in tradingbot.entrypoints.lambdas.operator_api, so AWS,
the local server (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.operator_api import handler

__all__ = ["handler"]
