"""Lambda entry point: predict. The code lives in tradingbot.entrypoints.lambdas.predict, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.predict import handler

__all__ = ["handler"]
