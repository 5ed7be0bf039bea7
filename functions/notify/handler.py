"""Lambda entry point: notify. The code lives in tradingbot.entrypoints.lambdas.notify, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.notify import handler

__all__ = ["handler"]
