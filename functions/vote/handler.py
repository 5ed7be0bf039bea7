"""Lambda entry point: vote. The code lives in tradingbot.entrypoints.lambdas.vote, so AWS, the local
runner (make run) and the tests all run the same handler."""

from tradingbot.entrypoints.lambdas.vote import handler

__all__ = ["handler"]
