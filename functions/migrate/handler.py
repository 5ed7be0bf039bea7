"""Lambda entry point: migrate. The code lives in tradingbot.entrypoints.lambdas.migrate, so AWS and the
tests run the same handler."""

from tradingbot.entrypoints.lambdas.migrate import handler

__all__ = ["handler"]
