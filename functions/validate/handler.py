"""Lambda entry point: validate. The code lives in tradingbot.entrypoints.lambdas.validate, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.validate import handler

__all__ = ["handler"]
