"""Lambda entry point: notify. The code lives in tradingbot.entrypoints.lambdas.handlers, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.handlers import notify_handler as handler

__all__ = ["handler"]
