"""Lambda entry point: record_outcome. The code lives in tradingbot.entrypoints.lambdas.record_outcome, so
AWS, the local runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.record_outcome import handler

__all__ = ["handler"]
